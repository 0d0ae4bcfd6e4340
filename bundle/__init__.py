"""The contract between agent and server: archive layout, manifest, redaction, encryption."""
