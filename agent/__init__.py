"""Customer side: the `mydiag` command (cli.py) and what it runs; never imports server.

May import: bundle, privacy, recording, collectors. Subfolders: commands/ (one module per
subcommand) over collect/, daemon/, remote/, session/; exitcodes.py and home.py serve them all.
"""
