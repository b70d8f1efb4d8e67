"""`serve` and `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from app.cli.common import load_settings, report
from app.config import SECRETS, Settings
from app.mail import mail_problems
from app.observability.audit import secret_event
from app.secrets import ConfigError, ConfigProblem, SecretStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the API (uvicorn); honours HOST, PORT, WORKERS")
    serve.set_defaults(handler=serve_command)
    migrate = commands.add_parser("migrate", help="alembic upgrade head with the resolved config")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
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
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "timeout_graceful_shutdown": settings.graceful_timeout_seconds,
        "log_config": None,
        "server_header": False,
        # app.observability writes the access log (with request id, route and duration).
        "access_log": False,
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
        store = await SecretStore.open(settings, SECRETS, events=secret_event)
        try:
            _check_mail(settings, store)
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


def worker_app() -> Any:
    """The app factory of each uvicorn worker process (WORKERS > 1). A worker is a fresh
    interpreter: configure its logging too, or its lines would bypass the JSON formatter."""
    from app.logs import configure_logging
    from app.main import create_app

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


async def _check_secrets(settings: Settings) -> None:
    store = await SecretStore.open(settings, SECRETS)
    try:
        _check_mail(settings, store)
    finally:
        await store.aclose()


def _check_mail(settings: Settings, store: SecretStore) -> None:
    """The lifespan would refuse these too, but inside uvicorn, as a traceback: say it here."""
    problems = mail_problems(settings, store)
    if problems:
        raise ConfigError(problems)


def alembic_config_path() -> Path:
    project_root = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / "alembic.ini", project_root / "alembic.ini"):
        if candidate.is_file():
            return candidate
    raise ConfigError([ConfigProblem("alembic.ini", "", "not found in the working directory")])


def migrate_command(args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.config import Config

    try:
        settings = load_settings()
        config = Config(str(alembic_config_path()))
        config.attributes["settings"] = settings
        command.upgrade(config, args.revision)
    except ConfigError as exc:
        return report(exc)
    return 0
