"""fastapi-secrets-template: a FastAPI backend whose settings and secrets come from one place."""
