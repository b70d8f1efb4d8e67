"""`python -m bench.server`: the bench app served the way `python -m app serve` serves the
product (secrets resolved before binding, one worker, uvloop + httptools, no server header, no
uvicorn access log),
configured from the environment (HOST, PORT, DATABASE_URL, ...)."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
import uvloop

from app.config import SECRETS, Settings
from app.logs import configure_logging
from app.secrets import SecretStore
from bench.app import create_bench_app


async def _serve(settings: Settings) -> None:
    store = await SecretStore.open(settings, SECRETS)
    config = uvicorn.Config(
        create_bench_app(settings, store=store),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        log_config=None,
        server_header=False,
        # As `python -m app serve`: app.observability writes the access line, uvicorn must not
        # write a second one (it did here, doubling the logging cost the bench measured).
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_timeout_seconds,
    )
    await uvicorn.Server(config).serve()


def main() -> int:
    settings = Settings()
    configure_logging(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
