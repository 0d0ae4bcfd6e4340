"""`python -m server.cli`: the same as the `mydiag-server` command."""

import sys

from server.cli.main import main

sys.exit(main())
