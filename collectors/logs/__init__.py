"""Log collectors: bounded tails of the server's error and slow logs."""
