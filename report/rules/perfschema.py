"""Rules: perfschema (filled by its author)."""
