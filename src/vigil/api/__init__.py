"""The REST API: an os-services compatible subset of the OpenStack Compute API, plus Vigil's own
resources. See :mod:`vigil.api.app` for the structure and docs/api.md for the reference."""
