"""Background jobs on the database: Solid Queue's model in Python."""
