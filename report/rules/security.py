"""Rules: security (filled by its author)."""
