"""Rules: workload (filled by its author)."""
