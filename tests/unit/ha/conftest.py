"""The API tests' app fixtures, for the recoveries resource tests here."""

from tests.api.conftest import api, api_factory  # noqa: F401 - fixtures re-exported
