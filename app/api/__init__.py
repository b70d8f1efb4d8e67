"""HTTP layer: dependency aliases, routers and error handlers."""
