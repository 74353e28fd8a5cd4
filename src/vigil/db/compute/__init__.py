"""Compute persistence: nodes (inventory and usage), flavors, instances and claims."""
