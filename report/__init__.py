"""A bundle read: the model, window primitives, rules and their findings, charts, diffs and
upgrade checks. Used by both sides (`mydiag report` and the support server); imports neither."""
