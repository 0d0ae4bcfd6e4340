"""Rules: schema (filled by its author)."""
