"""The conductor: the only process that writes the database on the agents' behalf."""
