"""Shared steps for the MFA tests: turn MFA on through the API, compute TOTP codes.

Codes are made for explicit time steps: `now_step()` and `now_step() + 1` are both inside the
server's window (current step +- 1) even if a step boundary passes between the test computing
them and the server checking them, so the tests do not flake at boundaries."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp

from tests.api.auth_helpers import bearer, login, signed_in

INTERVAL = 30


def now_step() -> int:
    return int(time.time() // INTERVAL)


def code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


@dataclass
class MfaAccount:
    email: str
    tokens: dict[str, Any] = field(repr=False)
    secret: str = field(repr=False)
    recovery_codes: list[str] = field(repr=False)
    #: The step the enabling code belonged to (later codes must be for later steps).
    enabled_step: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens["access_token"])


async def setup(client: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/mfa/setup", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def mfa_account(client: httpx.AsyncClient) -> MfaAccount:
    """A fresh account with MFA enabled (by a code of the current step)."""
    email, tokens = await signed_in(client)
    secret = (await setup(client, tokens["access_token"]))["secret"]
    step = now_step()
    enabled = await client.post(
        "/api/v1/auth/mfa/enable",
        json={"code": code(secret, step)},
        headers=bearer(tokens["access_token"]),
    )
    assert enabled.status_code == 200, enabled.text
    return MfaAccount(email, tokens, secret, enabled.json()["recovery_codes"], step)


async def challenge(client: httpx.AsyncClient, email: str) -> str:
    """Log in with the password; return the mfa_token the answer carries."""
    response = await login(client, email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_required"] is True, body
    token: str = body["mfa_token"]
    return token


async def verify(client: httpx.AsyncClient, mfa_token: str, value: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/mfa/verify", json={"mfa_token": mfa_token, "code": value}
    )
