"""What may leave the host: secret rules, the redaction pipeline, fingerprints, pseudonyms, lint.

May import: nothing of this project outside privacy/ (never agent, server, bundle, collectors).
"""
