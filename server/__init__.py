"""Support side: `mydiag-server`."""
