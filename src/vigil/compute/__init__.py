"""The compute agent (one per host)."""
