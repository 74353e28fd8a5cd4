"""Vigil: which services are alive, which nodes each one owns, and what happens when one dies."""

__version__ = "0.1.0"
