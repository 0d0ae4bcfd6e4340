"""The engineers' web pages: server-rendered HTML (Jinja2, autoescaped), no JavaScript needed.

`routes.py` builds the one router that server/api/app.py includes (hidden from the OpenAPI
document). A page is a module (`signin.py`, `ticketpages.py`) whose routes ask `access.py`
who is signed in, read through `support/`, `intake/` and `gateway/`, and answer through
`render.page`, which applies the security headers and hands the template the engineer and
the CSRF token. `urls.py` builds every link a page shows. Sign-in keeps its records in
`passwords.py` (argon2id) and `websessions.py` (cookie sessions, CSRF tokens, throttling).

*May import:* server.support, server.intake, server.gateway, server.storage, server.auth.
*Never:* server.api or server.cli (only server/api/app.py imports this package).
"""
