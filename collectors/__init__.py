"""Sources of diagnostics: one module per source, each collector a short declaration.

May import: bundle and privacy (manifest values, fingerprints); never agent or server.
"""
