"""Rules: binlog (filled by its author)."""
