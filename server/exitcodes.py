"""The documented exit codes of `mydiag-server` (docs/api.md lists them for users)."""

OK = 0
#: An unexpected error: a bug; the message says where to report it.
INTERNAL = 1
#: Bad arguments or options (also what argparse uses).
USAGE = 2
#: The data directory is missing, damaged, or already initialized (init).
DATA_DIR = 3
#: The database cannot be reached or used.
DATABASE = 4
#: No such ticket or bundle.
NOT_FOUND = 5
#: A file or folder could not be read or written (output, import, listen address).
IO_ERROR = 6
#: `bundle import`: the bundle was kept, but in quarantine (the reason is printed).
QUARANTINED = 7
#: `session replay`: a recording does not verify (changed, cut short, or its chain missing).
NOT_VERIFIED = 8
#: Interrupted (Ctrl-C).
INTERRUPTED = 130
