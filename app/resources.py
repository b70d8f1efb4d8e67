"""`Resources`: everything the lifespan opened, as ONE typed object.

`app.main`'s lifespan opens each resource in dependency order, yields a `Resources` as the
Starlette lifespan state, and closes them in reverse. Request handlers reach it through one
accessor, `resources_of(request)` (wrapped by the `Annotated` aliases of `app.api.deps`); nothing
else is shared through `app.state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.config import Settings
from app.mail import Mailer
from app.observability.metrics import Metrics
from app.secrets import SecretStore
from app.security.runtime import Security
from app.user_status import UserStatusCache


@dataclass(frozen=True, eq=False)
class Resources:
    settings: Settings
    store: SecretStore
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    security: Security
    users: UserStatusCache
    metrics: Metrics
    mailer: Mailer


class State(TypedDict):
    """The lifespan state: what every request's `request.state` starts from."""

    resources: Resources


def resources_of(connection: HTTPConnection) -> Resources:
    """The running app's resources (the one accessor). Read from the scope's lifespan state
    (what `connection.state` wraps) directly: it runs on every authenticated request."""
    try:
        resources: Resources = connection.scope["state"]["resources"]
    except KeyError:
        raise AttributeError("no resources: the app's lifespan has not run") from None
    return resources


def resources_in(scope_state: dict[str, Any] | None) -> Resources | None:
    """The resources in an ASGI scope's `state`, for pure ASGI middleware (None before the
    lifespan has run, e.g. when a server does not support lifespan state)."""
    found = (scope_state or {}).get("resources")
    return found if isinstance(found, Resources) else None
