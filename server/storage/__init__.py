"""Where state lives: the SQL layer (SQLite, PostgreSQL), the blob store, the audit log, leases.

May import: server.config and the standard library; nothing else of the server.
"""
