"""The REST API's routers, one module per resource; mounted under ``/api`` by the app factory."""
