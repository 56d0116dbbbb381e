"""Many models at once: jobs in parallel, cached results, baselines."""
