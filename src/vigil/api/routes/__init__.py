"""One module per resource; each defines ``router``. Enabled in vigil.api.app.ROUTE_MODULES."""
