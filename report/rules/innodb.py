"""Rules: innodb (filled by its author)."""
