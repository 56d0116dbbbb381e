"""Numbers: whole-model latency and memory, per-piece profiles, output error."""
