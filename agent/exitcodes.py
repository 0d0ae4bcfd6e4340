"""The documented exit codes of `mydiag` (docs/exit-codes.md lists them for users)."""

OK = 0
#: An unexpected error: a bug; the message says where to report it.
INTERNAL = 1
#: Bad arguments or options (also what argparse uses).
USAGE = 2
#: The bundle was written, but some collectors failed or are partial.
PARTIAL = 3
#: The MySQL server could not be reached (down, wrong host/port/socket).
CANNOT_CONNECT = 4
#: The server refused the credentials.
ACCESS_DENIED = 5
#: The bundle could not be written (disk full, no permission).
OUTPUT_ERROR = 6
#: The bundle could not be read (inspect).
BAD_BUNDLE = 7
#: Interrupted by the user (Ctrl-C).
INTERRUPTED = 130
