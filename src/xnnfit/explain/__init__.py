"""Why: a verdict with its knowledge-base causes for every node, gathered into a Diagnosis."""
