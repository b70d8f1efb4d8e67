"""`serve` and `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import resource
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from app.cli.common import load_settings, open_checked, report
from app.config import Settings
from app.observability.audit import secret_event
from app.secrets import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the API (uvicorn); honours HOST, PORT, WORKERS")
    serve.set_defaults(handler=serve_command)
    migrate = commands.add_parser("migrate", help="alembic upgrade head with the resolved config")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="keep retrying while the server refuses connections or is starting up, for at "
        "most SECONDS (default: 60)",
    )
    migrate.set_defaults(handler=migrate_command)


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once shutdown is complete, so even a clean
    drain after SIGTERM ends as "killed by signal" (143). SIGTERM is how orchestrators ask a
    process to stop: after a graceful shutdown that is a success, exit 0. SIGINT is re-raised
    as usual."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals = [
                sig for sig in self._captured_signals if sig != signal.SIGTERM
            ]


def serve_command(args: argparse.Namespace) -> int:
    from app.logs import configure_logging
    from app.main import create_app

    try:
        settings = load_settings()
    except ConfigError as exc:
        return report(exc)
    configure_logging(settings)
    no_core_dumps()
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "timeout_graceful_shutdown": settings.graceful_timeout_seconds,
        "log_config": None,
        "server_header": False,
        # app.observability writes the access log (with request id, route and duration).
        "access_log": False,
        # The app applies FORWARDED_ALLOW_IPS itself (app/api/headers.py), once.
        "proxy_headers": False,
    }
    if settings.workers > 1:
        # Each worker has its own event loop and resolves its own secrets; check them once here
        # so a bad config fails before any worker starts.
        try:
            asyncio.run(_check_secrets(settings))
        except ConfigError as exc:
            return report(exc)
        uvicorn.run(
            "app.cli.server_cmd:worker_app", factory=True, workers=settings.workers, **common
        )
        return 0

    async def run() -> None:
        # Resolve every secret before binding the port, on the loop that will serve, so the
        # store's providers and refresher belong to that loop.
        store = await open_checked(settings, events=secret_event)
        try:
            server = _Server(uvicorn.Config(create_app(settings, store=store), **common))
            await server.serve()
        finally:
            await store.aclose()  # the caller opened it, so the caller closes it

    loop_factory = uvicorn.Config("app.main:create_app", factory=True, **common).get_loop_factory()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(run())
    except ConfigError as exc:
        return report(exc)
    return 0


def no_core_dumps() -> None:
    """A crash must not write the process's memory, secrets included, to a core file
    (inherited by uvicorn's worker processes)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def worker_app() -> Any:
    """The app factory of each uvicorn worker process (WORKERS > 1). A worker is a fresh
    interpreter: configure its logging too, or its lines would bypass the JSON formatter."""
    from app.logs import configure_logging
    from app.main import create_app

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


async def _check_secrets(settings: Settings) -> None:
    store = await open_checked(settings)
    await store.aclose()


def alembic_config_path() -> Path:
    project_root = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / "alembic.ini", project_root / "alembic.ini"):
        if candidate.is_file():
            return candidate
    raise ConfigError([ConfigProblem("alembic.ini", "", "not found in the working directory")])


#: Waits between connection attempts while the database is not accepting connections yet.
_RETRY_DELAYS = (0.5, 1.0, 2.0, 3.0)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what it wraps (SQLAlchemy's `.orig`, `__cause__`, `__context__`)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "orig", None)
        for following in (wrapped, current.__cause__, current.__context__):
            if isinstance(following, BaseException):
                pending.append(following)


def server_not_up(exc: BaseException) -> bool:
    """Refused, unreachable, timed out, or still starting up: another attempt may succeed.
    Any other answer from a running server (a wrong password, no such database) is final."""
    import asyncpg

    for cause in _causes(exc):
        if isinstance(cause, asyncpg.PostgresError):
            return isinstance(cause, asyncpg.CannotConnectNowError)
        if isinstance(cause, OSError):
            return True
    return False


def _connect_with_retry(timeout: float) -> Callable[[AsyncEngine], Awaitable[AsyncConnection]]:
    async def connect(engine: AsyncEngine) -> AsyncConnection:
        deadline = time.monotonic() + timeout
        for attempt in itertools.count():
            try:
                return await engine.connect()
            except Exception as exc:
                remaining = deadline - time.monotonic()
                if not server_not_up(exc) or remaining <= 0:
                    raise
                delay = _RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)]
                if attempt == 0:
                    print(
                        f"migrate: the database does not accept connections yet "
                        f"({type(exc).__name__}); retrying for up to {timeout:.0f} s",
                        file=sys.stderr,
                    )
                await asyncio.sleep(min(delay, remaining))
        raise AssertionError("unreachable")

    return connect


def database_problem(exc: BaseException, settings: Settings, waited: float) -> str | None:
    """ONE line for a database that cannot be used as configured, naming the cause and the fix;
    None for anything else (a failing migration keeps its traceback)."""
    import asyncpg

    from app.db import database_url

    url = database_url(settings)
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return (
                f"migrate: {cause} at {where}: the password the app resolved (DATABASE_PASSWORD "
                "or DATABASE_CREDENTIALS) is not the role's password. Set the role's password to "
                "it (rotate it, docs/deploy.md), or, for a local compose stack whose data volume "
                "was initialised with an older ./secrets/database_password, `docker compose "
                "down -v` (DELETES the data) so the database is created again with the current one."
            )
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return (
                f"migrate: {cause} at {where}: create it (`make createdb` for a local "
                "server) or fix DATABASE_URL."
            )
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return f"migrate: the server refused the connection at {where}: {cause}."
    if server_not_up(exc):
        return (
            f"migrate: cannot connect to the database at {where} after {waited:.0f} s "
            f"({type(exc).__name__}: {exc}); is PostgreSQL running there, and DATABASE_URL right?"
        )
    return None


def migrate_command(args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.config import Config

    from app.secrets.redaction import redact

    try:
        settings = load_settings()
        config = Config(str(alembic_config_path()))
    except ConfigError as exc:
        return report(exc)
    config.attributes["settings"] = settings
    config.attributes["connect"] = _connect_with_retry(args.connect_timeout)
    started = time.monotonic()
    try:
        command.upgrade(config, args.revision)
    except ConfigError as exc:
        return report(exc)
    except Exception as exc:
        # env.py hands over the secret values it loaded (its store is closed by now): masked
        # in whatever is printed, like every log line.
        values = list(config.attributes.get("secret_values", []))
        line = database_problem(exc, settings, time.monotonic() - started)
        if line is None:
            trace = "".join(traceback.format_exception(exc))
            line = f"{trace}migrate: failed, see the traceback above"
        print(redact(line, values), file=sys.stderr)
        return 1
    return 0
