"""The HTTP API under /api/v1: the app and its routes by resource; errors.py is their one error type.

May import: intake/, support/, gateway/ (session records), storage/, auth; never cli/.
"""
