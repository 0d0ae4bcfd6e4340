"""Rules: caches (filled by its author)."""
