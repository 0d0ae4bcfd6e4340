"""Rules: memory (filled by its author)."""
