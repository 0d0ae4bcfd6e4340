"""The customer's end of a remote session: grant, tunnel, engineer channel, diag console, state.

May import: agent's collect/ (the console collects), home, and the shared packages.
"""
