"""Public repro packages without customer data (`mydiag share`): names and values mapped
by keyed, deterministic maps; DDL, statistics, synthetic rows and the query rewritten;
the package scanned for leaks and replayed on a fresh server before it is public."""
