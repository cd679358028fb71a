"""The node's HTTP API (FastAPI). Routers are thin: each route calls one capability function.
``create_app(settings)`` builds the application; ``auth`` holds API keys and roles."""
