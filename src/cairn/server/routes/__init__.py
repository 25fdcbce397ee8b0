"""One module per resource of the native REST API (``/api/v1``)."""
