"""Target 6: API-key auth / JWT auth (>= 0.9): requests/s of the protected no-op authenticated with
an API key, relative to the same route authenticated with an access token, in interleaved rounds
against the same server process (A, B, A, B, ...), median of the per-round ratios.

The protected no-op uses the app's real `CurrentClaims`, so the two sides differ only in what the
credential costs: for a JWT the verified-token cache and the revocation check; for a key its
format and CRC32 check, a SHA-256, the verified-key cache, the revocation check and the owner
check (the user status cache). Both warm their caches first, as a real client does after its
first request. Self-contained: it needs a running bench server and a signed-in account only.
"""

from __future__ import annotations

import statistics
from typing import Protocol

import httpx

from bench import wrk
from bench.app import PROTECTED
from bench.report import Result

ROUNDS = 5
SECONDS = 4.0
CONNECTIONS = 32
TARGET = 0.9


class Server(Protocol):
    @property
    def url(self) -> str: ...


class SignedIn(Protocol):
    @property
    def bearer(self) -> str: ...


def create_key(server: Server, account: SignedIn) -> str:
    """A new API key of the account (through the API, as a user makes one)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = client.post(
            "/api/v1/api-keys",
            json={"name": "bench"},
            headers={"Authorization": account.bearer},
        )
        created.raise_for_status()
        key: str = created.json()["key"]
        assert client.get(PROTECTED, headers={"X-API-Key": key}).is_success
    return key


def api_key_auth(server: Server, account: SignedIn, *, rounds: int = ROUNDS) -> Result:
    key = create_key(server, account)
    url = server.url + PROTECTED
    scripts = {
        "key": wrk.lua_script(headers={"Authorization": f"Bearer {key}"}),
        "jwt": wrk.lua_script(headers={"Authorization": account.bearer}),
    }
    for script in scripts.values():  # warm-up: caches, pools
        wrk.run(url, duration=1, connections=CONNECTIONS, script=script)
    measured: dict[str, list[float]] = {"key": [], "jwt": []}
    ratios = []
    for _ in range(rounds):
        for side, script in scripts.items():
            result = wrk.run(url, duration=SECONDS, connections=CONNECTIONS, script=script)
            measured[side].append(result.requests_per_second)
        ratios.append(measured["key"][-1] / measured["jwt"][-1])
    return Result(
        "7",
        "API-key auth / JWT auth: protected no-op rps with a key / with an access token",
        statistics.median(ratios),
        ">=",
        TARGET,
        f"API key {statistics.median(measured['key']):.0f} rps, "
        f"JWT {statistics.median(measured['jwt']):.0f} rps",
    )
