"""The documented exit codes of `mydiag` (the README lists them for users)."""

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
#: The bundle could not be written (disk full, no permission), or --output names something
#: that is not a writable directory (a file, a read-only or someone else's directory).
OUTPUT_ERROR = 6
#: The bundle could not be read (inspect).
BAD_BUNDLE = 7
#: No given identity opens the sealed file: it was sealed to other recipients (unseal, verify).
WRONG_KEY = 8
#: The sealed file is damaged or is not one: truncated, a byte changed, not an age file.
BAD_SEAL = 9
#: verify: a check failed: signature invalid or by another signer, a file changed, missing
#: or added.
NOT_VERIFIED = 10
#: verify: every file matches the manifest, but the bundle carries no signature, so
#: neither its origin nor its integrity against a deliberate change is proven.
UNSIGNED = 11
#: A key is missing, unreadable or not valid: the host key, an age identity or
#: recipient, or a --signer public key.
KEY_ERROR = 12
#: upload/enroll: the server could not be reached, or kept failing, through every retry
#: (run the same command again: the upload resumes where it stopped).
UPLOAD_FAILED = 13
#: upload/enroll: the server refused: wrong or expired token, no such ticket, size limit.
UPLOAD_REFUSED = 14
#: upload/enroll: the ticket's recipients differ from the pinned ones; nothing was sent.
RECIPIENT_CHANGED = 15
#: upload: the bundle reached the server, which keeps it in quarantine (the reason is printed).
QUARANTINED = 16
#: collect: the finished bundle still looked like it held a secret (the message names each
#: file and line, never the value); nothing was written. `--allow-findings` keeps it anyway.
SECRET_FINDINGS = 17
#: collect --review: the answer was no; nothing was written and nothing is left behind.
DECLINED = 18
#: pseudonyms lookup: a token is not in this host's map (made elsewhere, or the map was removed).
UNKNOWN_TOKEN = 19
#: collect --stacks: no stack snapshot can be taken here (not root, or neither eu-stack nor gdb
#: is installed); refused before anything was collected.
CANNOT_TRACE = 20
#: share / report --public: the output would hold customer data (an original name, value, host,
#: address or user, in some encoding); the message names each file and kind, never the value.
#: Nothing was written.
LEAK_FOUND = 21
#: share --verify-on: the replayed plan differs from the customer's; the package is written and
#: its README says "not reproduced".
PLAN_DIFFERS = 22
#: share: the bundle holds no share data (collect with --for-share), or none for that statement.
NO_SHARE_DATA = 23
#: mydiag.pyz (its bootstrap, packaging/pyz_main.py): this file was not built for this host's
#: Python, machine or C library (it runs on CPython 3.9 to 3.13, x86_64 and aarch64, glibc).
PYZ_UNSUPPORTED = 24
#: mydiag.pyz: the state directory (MYDIAG_HOME) cannot be written, so the compiled modules
#: cannot be extracted there; set MYDIAG_HOME to a writable directory.
PYZ_NO_STATE_DIR = 25
#: Interrupted by the user (Ctrl-C).
INTERRUPTED = 130
