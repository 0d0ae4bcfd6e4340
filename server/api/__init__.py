"""The HTTP API under /api/v1: the app and its routes by resource.

app.py builds the app; tickets.py, bundles.py, uploads.py (tus), audit.py and
sessions.py hold the routes; access.py says who may call what; routing.py holds what
every route module shares; errors.py is their one error type; httpedge.py bounds what a
request may look like before any route sees it.
May import: intake/, support/, gateway/ (session records), storage/, auth; never cli/.
"""
