"""Application factory and lifespan.

`create_app(settings)` builds the ASGI app; the lifespan OWNS every resource: it resolves the
secrets, opens the DB and Redis pools, starts the secret refresher, and closes them all on
shutdown. Nothing is created at import time, so tests and tools can build as many apps as they
need with different settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimitMiddleware
from app.api.routes import auth, health, jwks, users
from app.cache import create_redis
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.observability.setup import install_observability
from app.secrets import SecretStore
from app.secrets.redaction import register_secret_source
from app.security.runtime import Security
from app.security.users_cache import UserDirectory


def create_app(settings: Settings | None = None, *, store: SecretStore | None = None) -> FastAPI:
    """Build the app. `store` may be passed when the caller already resolved the secrets
    (the `serve` command does, to fail fast before binding a port)."""
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secrets = store if store is not None else await SecretStore.open(settings)
        unregister_redaction = register_secret_source(secrets)  # logs mask its live values
        engine = create_engine(settings, secrets)
        redis = create_redis(settings, secrets)
        app.state.secrets = secrets
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.redis = redis
        app.state.security = Security.create(settings, secrets, redis)
        app.state.users = UserDirectory(settings, secrets)  # NOTIFY-invalidated user cache
        secrets.start()
        app.state.security.start()
        app.state.users.start()
        observability.start(app)  # metrics follow the store; key-ring changes are audited
        try:
            yield
        finally:
            observability.stop()
            await app.state.security.aclose()
            await app.state.users.aclose()
            await secrets.aclose()
            await redis.aclose()
            await engine.dispose()
            unregister_redaction()

    production = settings.is_production
    app = FastAPI(
        title="fastapi-secrets-template",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None if production else "/docs",
        redoc_url=None if production else "/redoc",
        openapi_url=None if production else "/openapi.json",
    )
    app.state.settings = settings  # set once, here: it exists even before the lifespan runs
    observability = install_observability(app, settings)  # request ids, access log, /metrics
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(jwks.router)
    return app
