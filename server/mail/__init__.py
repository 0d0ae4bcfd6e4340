"""Email both ways (issue 14, docs/mail.md): inbound by SMTP/LMTP (smtp.py) and IMAP (imap.py)
into one path (inbound.py: store first, then parse.py with htmltext.py, loops.py,
threading.py), and outbound through a durable outbox (outbox.py) to a smart host
(sender.py); tokens.py signs the reply addresses and Message-IDs. service.py runs it all
beside `mydiag-server run`.

May import: server.support, server.storage, server.intake, server.config, bundle.
Never: server.api, server.web, server.cli (nothing below cli/ imports argparse).
"""
