"""One thin module per `mydiag` subcommand (parse, call, print, exit code) and their shared options.

May import: agent's collect/, daemon/, remote/, session/, exitcodes, home, and the shared packages.
"""
