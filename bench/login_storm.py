"""Target 4: the event loop stays healthy while 16 clients log in continuously, and login
throughput keeps up with what argon2 allows on this machine.

- p99 of `/health/live`, sampled by one connection pausing 5 ms between requests (a probe, not a
  load), during a login storm vs idle: <= 3.
- logins/s during the storm vs the argon2 verify rate measured in-process (one thread) x CPUs:
  >= 0.8.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.security.passwords import OWASP_MINIMUM
from bench import wrk
from bench.report import Result
from bench.services import Account, BenchServer, cpu_count

ROUNDS = 5
SECONDS = 5.0
LOGIN_CLIENTS = 16
PROBE_DELAY_MS = 5


def _hasher() -> PasswordHash:
    params = OWASP_MINIMUM
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=params.time_cost,
                memory_cost=params.memory_cost,
                parallelism=params.parallelism,
            ),
        )
    )


def argon2_verify_rate(threads: int = 1, seconds: float = 1.5) -> float:
    """Verifies per second with the app's own parameters, on `threads` threads at once."""
    hasher = _hasher()
    hashed = hasher.hash("correct horse battery staple")

    def work() -> int:
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            hasher.verify("correct horse battery staple", hashed)
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: work(), range(threads)))
    return total / (time.perf_counter() - started)


def _probe(server: BenchServer, seconds: float) -> tuple[object, object]:
    return wrk.start(
        server.url + "/health/live",
        duration=seconds,
        connections=1,
        script=wrk.lua_script(delay_ms=PROBE_DELAY_MS),
    )


def login_storm(server: BenchServer, accounts: Sequence[Account]) -> list[Result]:
    """`accounts`: one per client, taken in turn, as a storm of many users looks (one
    account gets at most `MAX_IN_FLIGHT` password checks at once, by design)."""
    login_script = wrk.lua_script(
        method="POST",
        bodies=[urlencode({"username": a.email, "password": a.password}) for a in accounts],
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    login_url = server.url + "/api/v1/auth/login"
    wrk.run(login_url, duration=1, connections=LOGIN_CLIENTS, script=login_script)  # warm-up

    cores = cpu_count()
    idle_p99, storm_p99, samples, logins, rates, parallel, shares = [], [], [], [], [], [], []
    for _ in range(ROUNDS):
        idle_p99.append(wrk.finish(_probe(server, SECONDS)).p99_ms)  # type: ignore[arg-type]
        storm = wrk.start(
            login_url, duration=SECONDS + 1, connections=LOGIN_CLIENTS, script=login_script
        )
        time.sleep(0.5)  # the storm is on before sampling starts
        probe = wrk.finish(_probe(server, SECONDS))  # type: ignore[arg-type]
        storm_result = wrk.finish(storm)
        storm_p99.append(probe.p99_ms)
        samples.append(probe.requests)
        logins.append(storm_result.requests_per_second)
        # The hash rate is measured in the same round, so both see the same machine.
        rates.append(argon2_verify_rate())
        parallel.append(argon2_verify_rate(threads=cores))
        shares.append(logins[-1] / (rates[-1] * cores))

    idle, busy = statistics.median(idle_p99), statistics.median(storm_p99)
    return [
        Result(
            "4a",
            f"/health/live p99 during a {LOGIN_CLIENTS}-client login storm / idle p99",
            busy / idle,
            "<=",
            3.0,
            f"storm p99 {busy:.2f} ms, idle p99 {idle:.2f} ms "
            f"({statistics.median(samples):.0f} probe samples per round)",
        ),
        Result(
            "4b",
            "login throughput / (argon2 verify rate x CPUs)",
            statistics.median(shares),
            ">=",
            0.8,
            f"{statistics.median(logins):.1f} logins/s; argon2 in-process "
            f"{statistics.median(rates):.1f}/s on 1 thread x {cores} CPUs "
            f"(measured on {cores} threads at once: {statistics.median(parallel):.1f}/s)",
        ),
    ]
