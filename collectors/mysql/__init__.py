"""MySQL/MariaDB collectors: flavor, named SQL statements and the safe session."""
