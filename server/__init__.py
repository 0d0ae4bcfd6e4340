"""Support side: `mydiag-server` (cli/), its HTTP API (api/) and everything behind it; never imports agent.

May import: bundle, recording (and later report). At the top only what is process-wide:
config.py (the data directory), exitcodes.py, auth.py (who a token is, for every way in).
"""
