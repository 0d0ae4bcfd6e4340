"""Rules: redo (filled by its author)."""
