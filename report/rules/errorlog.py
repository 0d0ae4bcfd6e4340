"""Rules: errorlog (filled by its author)."""
