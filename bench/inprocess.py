"""`python -m bench.inprocess`: CPU time per request of the ASGI apps, called in process.

No sockets, no wrk, no uvicorn: each app is called directly with an ASGI scope, sequentially, so
the figures are the app's own cost and far less noisy than throughput on a shared machine (they
are process CPU time, the log writer thread included). It attributes what `/health/live` and
`/api/v1/users/me` cost over the bare endpoint: the same app built without the request
observability middleware (request id, access log, metrics) shows that middleware's share.
The users cache is warm and nothing runs concurrently, so it does not show what concurrency
costs (see the py-spy profiles in results.md). Not a target: a diagnostic.

Usage: python -m bench.inprocess [--level info|warning] [--requests 1000] [--rounds 11]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from bench.services import bench_environment

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


async def cpu_per_request(
    app: ASGIApp,
    path: str,
    headers: list[tuple[bytes, bytes]],
    n: int,
    state: dict[str, Any] | None = None,
) -> float:
    """Microseconds of process CPU per request, over `n` sequential requests (`state`: the
    app's lifespan state, which a server copies into every request's scope)."""
    scope = {
        "state": state or {},
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: set[int] = set()

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    started = time.process_time()
    for _ in range(n):
        await app({**scope, "state": dict(scope["state"])}, receive, send)
    elapsed = time.process_time() - started
    if statuses != {200}:
        raise RuntimeError(f"{path} answered {statuses}")
    return elapsed / n * 1e6


def build_apps() -> dict[str, Any]:
    """The bench app, and the same app without the request observability middleware (its edge
    layer made a pass-through while that app is built)."""
    from app.config import Settings
    from app.observability.setup import Observability
    from bench.app import create_bench_app

    settings = Settings()
    apps = {"product": create_bench_app(settings)}
    edge = Observability.edge
    Observability.edge = lambda self, inner, **_: inner  # type: ignore[method-assign]
    try:
        apps["product without the observability middleware"] = create_bench_app(settings)
    finally:
        Observability.edge = edge  # type: ignore[method-assign]
    return apps


async def measure(requests: int, rounds: int) -> dict[str, list[float]]:
    import bench.bare

    apps = build_apps()
    states: dict[str, dict[str, Any]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, application in apps.items():
            lifespan = application.router.lifespan_context(application)
            states[name] = dict(await stack.enter_async_context(lifespan) or {})
        product = apps["product"]

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            await product({**scope, "state": dict(states["product"])}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            email, password = f"b-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
            body = {"email": email, "password": password}
            (await client.post("/api/v1/auth/register", json=body)).raise_for_status()
            form = {"username": email, "password": password}
            login = await client.post("/api/v1/auth/login", data=form)
            token = login.json()["access_token"]
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"user-agent", b"bench"),
        ]
        targets: list[tuple[str, Any, str, dict[str, Any]]] = [
            ("bare endpoint", bench.bare.app, bench.bare.PATH, {})
        ]
        for name, application in apps.items():
            targets += [
                (f"{name}: /health/live", application, "/health/live", states[name]),
                (f"{name}: /api/v1/users/me", application, "/api/v1/users/me", states[name]),
            ]
        for _, application, path, state in targets:  # warm-up
            await cpu_per_request(application, path, headers, 200, state)
        results: dict[str, list[float]] = {name: [] for name, _, _, _ in targets}
        for _ in range(rounds):  # interleaved, like the throughput ratios
            for name, application, path, state in targets:
                results[name].append(
                    await cpu_per_request(application, path, headers, requests, state)
                )
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("--level", default="info", choices=["info", "warning"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    with bench_environment() as env, open(os.devnull, "w") as sink:
        os.environ.update({**env, "LOG_LEVEL": args.level})
        from app.config import Settings
        from app.logs import configure_logging

        configure_logging(Settings())
        for handler in logging.getLogger().handlers:  # the access lines go nowhere
            handler.setStream(sink)  # type: ignore[attr-defined]
        results = asyncio.run(measure(args.requests, args.rounds))
        logging.getLogger().handlers[0].flush()
    bare = statistics.median(results["bare endpoint"])
    print(f"LOG_LEVEL={args.level}, process CPU per request, median of {args.rounds} rounds:")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:62} {median:7.1f} us  (+{median - bare:6.1f} over bare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
