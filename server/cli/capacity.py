"""(issue 15: being written) mydiag-server capacity commands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """No commands yet."""
