"""The customer's end of a remote session: grant, tunnel, engineer channel, diag console, state.

May import: agent's collect/ (the console collects), remote/ (the grant is asked of the support
server), home, and the shared packages.
"""
