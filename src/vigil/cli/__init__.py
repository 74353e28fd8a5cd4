"""The ``vigil`` command: thin subcommands over the same functions the REST API uses."""
