"""One collection: the runner, live progress and summary, connection resolution, low priority.

May import: agent.home, collectors, bundle, privacy; never commands/, daemon/, remote/, session/.
"""
