"""Customer side: the `mydiag` command, the collection runner."""
