"""Target 3: verifying a token costs the same with 1000 keys in the ring as with 1 (the key is
found by `kid`, never by trying keys). In-process micro-benchmark of `KeyRing.verify`, the raw
signature path (the app's verified-token cache is bypassed on purpose).

The 1000-key token is signed by the OLDEST key, the worst case for any scan of the ring."""

from __future__ import annotations

import secrets
import statistics
import time
import uuid
from typing import Any

import jwt

from app.keys.signing import KeyRing
from app.security.tokens import ACCESS_TOKEN_TYPE
from bench.report import Result

ROUNDS = 7
#: Each round times REPEATS batches of VERIFIES per ring and keeps the fastest batch (noise on a
#: shared machine only ever adds time); the reported ratio is the median over rounds.
REPEATS = 5
VERIFIES = 1000
ISSUER = AUDIENCE = "bench"


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }


def _token_for(ring: KeyRing, position: int) -> str:
    key = ring.keys[position]
    return jwt.encode(
        _claims(),
        key.jwk.key,
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def _seconds_per_verify(ring: KeyRing, token: str) -> float:
    verify = ring.verify
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(VERIFIES):
            verify(token, typ=ACCESS_TOKEN_TYPE, issuer=ISSUER, audience=AUDIENCE)
        best = min(best, time.perf_counter() - started)
    return best / VERIFIES


def keyring_size() -> Result:
    secrets_1000 = [secrets.token_urlsafe(48) for _ in range(1000)]
    big = KeyRing.from_raw_secrets(secrets_1000)
    small = KeyRing.from_raw_secrets(secrets_1000[-1:])
    big_token, small_token = _token_for(big, len(big) - 1), _token_for(small, 0)
    _seconds_per_verify(big, big_token)
    _seconds_per_verify(small, small_token)
    ratios, big_times, small_times = [], [], []
    for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both sides
        s = _seconds_per_verify(small, small_token)
        b = _seconds_per_verify(big, big_token)
        small_times.append(s)
        big_times.append(b)
        ratios.append(b / s)
    return Result(
        "3",
        "verify cost, 1000-key ring / 1-key ring",
        statistics.median(ratios),
        "<=",
        1.05,
        f"1000 keys {statistics.median(big_times) * 1e6:.1f} us, "
        f"1 key {statistics.median(small_times) * 1e6:.1f} us per verify",
    )
