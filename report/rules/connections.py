"""Rules: connections (filled by its author)."""
