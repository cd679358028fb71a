"""HTTP routers, one module per capability."""
