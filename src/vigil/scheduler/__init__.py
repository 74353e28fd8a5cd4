"""The scheduler: picks a host for each instance and claims its resources atomically."""
