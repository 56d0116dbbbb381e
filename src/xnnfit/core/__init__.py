"""Foundations every stage uses: errors, the output policy, child processes, thresholds, results as data."""
