"""The web pages of engineers and customers' people: server-rendered HTML (Jinja2, autoescaped),
no JavaScript needed.

`routes.py` builds the one router that server/api/app.py includes (hidden from the OpenAPI
document). A page is a module (`signin.py`, `ticketpages.py`) whose routes ask `access.py`
who is signed in, read through `support/`, `intake/` and `gateway/`, and answer through
`render.page`, which applies the security headers and hands the template the engineer and
the CSRF token. `urls.py` builds every link a page shows. Sign-in keeps its records in
`passwords.py` (argon2id) and `websessions.py` (cookie sessions, CSRF tokens, throttling).
The conversation (issue 14): `conversation.py` (the timeline, deadlines, engineers' forms),
`clockview.py` (time zones), `customers.py` and `customersessions.py` (sign-in links mailed
through server/mail's outbox, customer sessions, the customers' pages).

*May import:* server.support, server.intake, server.gateway, server.storage, server.auth,
server.mail (the outbox, for sign-in links).
*Never:* server.api or server.cli (only server/api/app.py imports this package).
"""
