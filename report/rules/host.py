"""Rules: host (filled by its author)."""
