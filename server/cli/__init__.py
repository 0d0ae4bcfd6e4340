"""`mydiag-server` and its command groups: main.py (init, run, ticket, engineer, bundle), sessions.py.

May import: anything under server/; the command modules share common.py and never import each other.
"""
