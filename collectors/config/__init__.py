"""Configuration collectors: option files, persisted variables, service units."""
