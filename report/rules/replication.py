"""Rules: replication (filled by its author)."""
