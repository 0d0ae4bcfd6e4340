"""The scheduled agent (`mydiag agent run`): config, monitor, triggers, spool, shipping, unit.

May import: agent's collect/, remote/, session/ (queued grants), home, and the shared packages.
"""
