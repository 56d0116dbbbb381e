"""Choosing a model: the recipe sweep (quant) and optimize, with the rule that picks one."""
