"""The one error of the share package builder: a one-line reason a package cannot be made."""

from __future__ import annotations


class ShareError(ValueError):
    """A bundle, a statement or a definition the builder cannot turn into a package, said in
    one line (shown on the user's own terminal, never written into a package)."""
