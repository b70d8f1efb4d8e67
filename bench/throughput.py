"""Throughput ratios, each the median over interleaved rounds (A, B, C, A, B, C, ...) taken in
the same run, so the machine's state is shared by both sides of every ratio.

- 0 / 2a-2c: requests/s of the product relative to a BARE FastAPI endpoint served the same way
  (`bench.bare`): `/api/v1/users/me` at the default log level (an access line written, redaction
  on) and at LOG_LEVEL=warning, and `/health/live`.
- 1: a no-op behind the app's real bearer dependency / the same no-op unprotected.
- 6: `/api/v1/users/me` with WORKERS=2 / WORKERS=1 (`python -m app serve`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from bench import wrk
from bench.app import PROTECTED, UNPROTECTED
from bench.bare import PATH as BARE_PATH
from bench.report import Result
from bench.services import Account, BenchServer

ROUNDS = 5
SECONDS = 4.0
CONNECTIONS = 32
USERS_ME = "/api/v1/users/me"


@dataclass(frozen=True)
class Pair:
    subject_rps: float
    baseline_rps: float
    ratio: float


def interleaved(
    urls: Mapping[str, str],
    *,
    headers: dict[str, str],
    rounds: int | None = None,
    seconds: float | None = None,
) -> dict[str, list[float]]:
    """requests/s of every URL in every round, the URLs taken in turn within each round."""
    rounds = ROUNDS if rounds is None else rounds
    seconds = SECONDS if seconds is None else seconds
    script = wrk.lua_script(headers=headers)
    # Warm-up: caches (token cache, pools, imports) fill before anything is timed.
    for url in urls.values():
        wrk.run(url, duration=1, connections=CONNECTIONS, script=script)
    rps: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            rps[name].append(
                wrk.run(
                    url, duration=seconds, connections=CONNECTIONS, script=script
                ).requests_per_second
            )
    return rps


def ratio(rps: Mapping[str, list[float]], subject: str, baseline: str) -> Pair:
    """Medians of each side, and the median of the per-round ratios."""
    per_round = [s / b for s, b in zip(rps[subject], rps[baseline], strict=True)]
    return Pair(
        statistics.median(rps[subject]),
        statistics.median(rps[baseline]),
        statistics.median(per_round),
    )


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def against_bare(
    bare: BenchServer, default: BenchServer, warning: BenchServer, account: Account
) -> list[Result]:
    """Rows 0 and 2a-2c: the product at each log level vs the bare endpoint, one run."""
    rps = interleaved(
        {
            "bare": bare.url + BARE_PATH,
            "me_default": default.url + USERS_ME,
            "me_warning": warning.url + USERS_ME,
            "live": default.url + "/health/live",
        },
        # The same header everywhere: the bare endpoint and /health/live ignore it.
        headers={"Authorization": account.bearer},
    )
    rows = [
        ("2a", "me_default", "GET /api/v1/users/me, default log level (info) / bare", 0.50),
        ("2b", "me_warning", "GET /api/v1/users/me, LOG_LEVEL=warning / bare", 0.60),
        ("2c", "live", "GET /health/live, default log level / bare", 0.85),
    ]
    results = [
        Result(
            "0",
            "bare FastAPI endpoint, the reference of 2a-2c",
            1.0,
            "ref",
            1.0,
            f"bare {statistics.median(rps['bare']):.0f} rps (rounds {spread(rps['bare'])})",
        )
    ]
    for number, name, title, target in rows:
        pair = ratio(rps, name, "bare")
        per_round = [s / b for s, b in zip(rps[name], rps["bare"], strict=True)]
        results.append(
            Result(
                number,
                title,
                pair.ratio,
                ">=",
                target,
                f"{pair.subject_rps:.0f} rps vs bare {pair.baseline_rps:.0f} rps "
                f"(round ratios {spread(per_round)})",
            )
        )
    return results


def auth_overhead(server: BenchServer, account: Account) -> Result:
    # The same header on both sides: the unprotected no-op ignores it, so the only difference
    # is the dependency.
    rps = interleaved(
        {"protected": server.url + PROTECTED, "unprotected": server.url + UNPROTECTED},
        headers={"Authorization": account.bearer},
    )
    pair = ratio(rps, "protected", "unprotected")
    return Result(
        "1",
        "auth overhead: protected no-op rps / unprotected no-op rps",
        pair.ratio,
        ">=",
        0.80,
        f"protected {pair.subject_rps:.0f} rps, unprotected {pair.baseline_rps:.0f} rps",
    )


def workers(one: BenchServer, two: BenchServer, account: Account, cores: int) -> Result:
    rps = interleaved(
        {"two": two.url + USERS_ME, "one": one.url + USERS_ME},
        headers={"Authorization": account.bearer},
    )
    pair = ratio(rps, "two", "one")
    return Result(
        "6",
        "GET /api/v1/users/me, WORKERS=2 / WORKERS=1 (default log level)",
        pair.ratio,
        ">=",
        1.6,
        f"2 workers {pair.subject_rps:.0f} rps, 1 worker {pair.baseline_rps:.0f} rps, on "
        f"{cores} CPUs that also run wrk, PostgreSQL and Redis",
    )
