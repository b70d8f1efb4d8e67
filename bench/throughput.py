"""Targets 1 and 2: requests/s of an endpoint relative to a baseline endpoint, measured in
interleaved rounds against the same server process (A, B, A, B, ...), median of the rounds."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench import wrk
from bench.app import PROTECTED, UNPROTECTED
from bench.report import Result
from bench.services import Account, BenchServer

ROUNDS = 5
SECONDS = 4.0
CONNECTIONS = 32


@dataclass(frozen=True)
class Pair:
    subject_rps: float
    baseline_rps: float
    ratio: float


def compare(
    server: BenchServer,
    subject: str,
    baseline: str,
    *,
    headers: dict[str, str],
    rounds: int = ROUNDS,
    seconds: float = SECONDS,
) -> Pair:
    script = wrk.lua_script(headers=headers)
    # Warm-up: JIT-free Python still has caches (token cache, pools, imports) to fill.
    for path in (subject, baseline):
        wrk.run(server.url + path, duration=1, connections=CONNECTIONS, script=script)
    subject_rps, baseline_rps, ratios = [], [], []
    for _ in range(rounds):
        s = wrk.run(
            server.url + subject, duration=seconds, connections=CONNECTIONS, script=script
        ).requests_per_second
        b = wrk.run(
            server.url + baseline, duration=seconds, connections=CONNECTIONS, script=script
        ).requests_per_second
        subject_rps.append(s)
        baseline_rps.append(b)
        ratios.append(s / b)
    return Pair(
        statistics.median(subject_rps), statistics.median(baseline_rps), statistics.median(ratios)
    )


def auth_overhead(server: BenchServer, account: Account) -> Result:
    # The same header on both sides: the unprotected no-op ignores it, so the only difference
    # is the dependency.
    pair = compare(server, PROTECTED, UNPROTECTED, headers={"Authorization": account.bearer})
    return Result(
        "1",
        "auth overhead: protected no-op rps / unprotected no-op rps",
        pair.ratio,
        ">=",
        0.80,
        f"protected {pair.subject_rps:.0f} rps, unprotected {pair.baseline_rps:.0f} rps",
    )


def users_me(server: BenchServer, account: Account) -> Result:
    pair = compare(
        server, "/api/v1/users/me", "/health/live", headers={"Authorization": account.bearer}
    )
    return Result(
        "2",
        "GET /api/v1/users/me rps / GET /health/live rps",
        pair.ratio,
        ">=",
        0.50,
        f"users/me {pair.subject_rps:.0f} rps, health/live {pair.baseline_rps:.0f} rps",
    )
