"""Application factory and lifespan.

`create_app(settings)` builds the ASGI app; its lifespan is the ONE owner of every resource. It
opens them in dependency order in one `AsyncExitStack` (secrets -> log redaction -> engine ->
Redis -> security -> user status cache -> mailer -> observability hooks), yields them as one typed
`Resources` (the lifespan state; routes reach it through `app.api.deps`), and closes them in
reverse, every close attempted even when an open or another close fails. Nothing is created at
import time, so tests and tools can build as many apps as they need with different settings.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import install_error_handlers
from app.api.headers import behind_trusted_proxies, security_headers
from app.api.limits import BodySizeLimitMiddleware
from app.api.routes import (
    account,
    admin,
    api_keys,
    auth,
    health,
    items,
    jwks,
    metrics,
    mfa,
    users,
)
from app.api.routing import add_routes
from app.cache import create_redis
from app.config import SECRETS, Settings
from app.db import connect_dedicated, create_engine, create_sessionmaker, pool_recycle_seconds
from app.mail import create_mailer
from app.observability.audit import secret_event
from app.observability.setup import Observability
from app.resources import Resources, State
from app.secrets import ConfigError, SecretStore
from app.secrets.redaction import register_secret_source
from app.security.runtime import Security
from app.user_status import UserStatusCache


class Application(FastAPI):
    """FastAPI behind one ASGI layer at its edge, outside everything Starlette builds.

    `add_middleware` would place a middleware inside Starlette's `ServerErrorMiddleware`, where
    an unhandled error's 500 bypasses it (no request id header, no metric). Observability must
    see every response, so `edge` wraps the app itself."""

    def __init__(self, *, edge: Callable[[ASGIApp], ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self._edged: ASGIApp = edge(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._edged(scope, receive, send)


def create_app(settings: Settings | None = None, *, store: SecretStore | None = None) -> FastAPI:
    """Build the app. `store` may be passed when the caller already resolved the secrets (the
    `serve` command does, to fail fast before binding a port); the caller then owns it: the app
    does not close it."""
    settings = settings if settings is not None else Settings()
    observability = Observability(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            yield {"resources": await open_resources(stack, settings, store, observability)}

    production = settings.is_production

    def edge(inner: ASGIApp) -> ASGIApp:
        # Outermost first: settle the client address and scheme (trusted proxies only), then
        # security headers and observability see the real ones, for every response.
        observed = observability.edge(inner, default_headers=security_headers)
        return behind_trusted_proxies(observed, settings.forwarded_allow_ips)

    app = Application(
        edge=edge,
        title="fastapi-secrets-template",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None if production else "/docs",
        redoc_url=None if production else "/redoc",
        openapi_url=None if production else "/openapi.json",
        # operationId = the route function's name (`list_items`, not `list_items_api_v1_items_get`):
        # generated clients name their functions after it (`make client`, docs/clients.md).
        generate_unique_id_function=lambda route: route.name,
        # Spans come from app/observability/tracing.py when OTEL_* is set; FastAPI's own
        # telemetry would only add a per-request check of the global OpenTelemetry providers.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    observability.instrument(app)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.allowed_origins:
        # Browsers from these exact origins may call the API with credentials; any other
        # origin gets no CORS headers (its preflight fails), so its pages cannot read answers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    # Routes are tried in order: most-requested first.
    add_routes(app, health.router)
    add_routes(app, users.router)
    add_routes(app, items.router)
    add_routes(app, api_keys.router)
    add_routes(app, auth.router)
    add_routes(app, mfa.router)
    add_routes(app, jwks.router)
    add_routes(app, account.router)
    add_routes(app, admin.router)
    if settings.metrics_enabled:
        add_routes(app, metrics.router(settings))
    # FastAPI put /openapi.json and the docs pages first: every API request would try them.
    app.router.routes.sort(key=lambda route: not isinstance(route, APIRoute))
    return app


async def open_resources(
    stack: AsyncExitStack,
    settings: Settings,
    store: SecretStore | None,
    observability: Observability,
) -> Resources:
    """Open every resource on `stack`, each close registered right after its open."""
    problems = settings.production_problems()
    if problems:
        raise ConfigError(problems)
    if store is None:
        store = await SecretStore.open(settings, SECRETS, events=secret_event)
        stack.push_async_callback(store.aclose)
    stack.callback(register_secret_source(store))  # logs mask its live values
    engine = create_engine(settings, store)
    stack.push_async_callback(engine.dispose)
    redis = create_redis(settings, store)
    stack.push_async_callback(redis.aclose)
    security = Security.create(settings, store, redis)
    stack.push_async_callback(security.aclose)
    users = UserStatusCache(
        engine,
        functools.partial(connect_dedicated, settings, store),
        functools.partial(pool_recycle_seconds, settings, store),
    )
    stack.push_async_callback(users.aclose)
    # Closing drains the queue (bounded), before the store it reads SMTP_PASSWORD from closes.
    mailer = create_mailer(settings, store, observability.metrics)
    stack.push_async_callback(mailer.aclose)
    await stack.enter_async_context(observability.attached(store, engine, redis))
    # Background work starts last, once everything it uses exists; it stops first.
    store.start()
    stack.push_async_callback(store.stop)
    security.start()
    users.start()
    mailer.start()
    return Resources(
        settings=settings,
        store=store,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        redis=redis,
        security=security,
        users=users,
        metrics=observability.metrics,
        mailer=mailer,
    )
