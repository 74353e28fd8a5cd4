"""Bare-metal persistence: Vigil's node inventory, the ring's members, the ownership of the
nodes' compute-node records, and provisioning."""
