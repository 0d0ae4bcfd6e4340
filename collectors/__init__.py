"""Sources of diagnostics: one module per source, each collector a short declaration."""
