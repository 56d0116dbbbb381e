"""Renderers: they only read frozen results (terminal via rich, JSON for machines)."""
