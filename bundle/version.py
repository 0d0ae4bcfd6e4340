"""The one place that knows the tool and bundle format versions."""

__version__ = "0.1.0"

#: Bumped when the bundle layout or manifest schema changes incompatibly.
FORMAT_VERSION = 1
