"""`mydiag-server`: the support side (only --version for now)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bundle.version import __version__


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mydiag-server", description="mydiag support server.")
    parser.add_argument("--version", action="version", version=f"mydiag-server {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
