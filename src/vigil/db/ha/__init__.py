"""High-availability persistence: the leader lease and its guard, recoveries and their
timeline, evacuations, alerts, and hosts' quarantine and maintenance."""
