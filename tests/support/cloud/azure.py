"""A fake Azure Key Vault (`GET/PUT /secrets/{name}[/{version}]`, TLS, bearer challenge) and an
App Service managed-identity token endpoint, so `DefaultAzureCredential` works unchanged.

Key Vault's SDK first sends an unauthenticated request, reads the `WWW-Authenticate` challenge,
then fetches a token for the challenge's resource and retries. The SDK checks that the resource
domain is a parent of the vault host; for `127.0.0.1` the parent `0.0.1` satisfies that check.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.cloud.http import FakeServer, Recorded, Reply

VAULT = "app-vault"
TENANT = "00000000-0000-0000-0000-000000000000"


@dataclass
class FakeKeyVault:
    server: FakeServer = field(default_factory=FakeServer)  # TLS
    identity: FakeServer = field(default_factory=FakeServer)  # managed identity endpoint
    identity_header: str = field(default_factory=lambda: secrets.token_hex(16))
    secrets_: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # name -> versions
    denied: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        secret = r"/(?P<vault>[^/]+)/secrets/(?P<name>[A-Za-z0-9-]+)(?:/(?P<version>[A-Za-z0-9]*))?"
        self.server.route("GET", secret)(self._get)
        self.server.route("PUT", secret)(self._set)
        self.identity.route("GET", r"/msi/token")(self._token)

    def add(self, name: str, value: str) -> str:
        version = secrets.token_hex(16)
        self.secrets_.setdefault(name, []).append((version, value))
        return version

    @property
    def vault_url_template(self) -> str:
        return self.server.url + "/{vault}"

    # ---- handlers ---------------------------------------------------------------------------

    def _challenge(self, record: Recorded) -> Reply | None:
        scheme, _, token = (record.headers.get("Authorization") or "").partition(" ")
        if scheme == "Bearer" and token in self.tokens:
            return None
        port = self.server.url.rsplit(":", 1)[1]
        return Reply(
            401,
            {"error": {"code": "Unauthorized", "message": "token required"}},
            {
                "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline'
                f'.com/{TENANT}", resource="https://0.0.1:{port}"'
            },
        )

    def _bundle(self, name: str, version: str, value: str) -> dict[str, Any]:
        return {
            "value": value,
            "id": f"{self.server.url}/secrets/{name}/{version}",
            "attributes": {
                "enabled": True,
                "created": int(time.time()),
                "updated": int(time.time()),
                "recoveryLevel": "Recoverable",
            },
        }

    def _get(self, match: Any, record: Recorded) -> Reply:
        challenge = self._challenge(record)
        if challenge is not None:
            return challenge
        name = match["name"]
        if name in self.denied:
            return Reply(403, {"error": {"code": "Forbidden", "message": "forbidden by RBAC"}})
        versions = self.secrets_.get(name) or []
        wanted = [v for v in versions if match["version"] in (None, "", v[0])]
        if not wanted:
            return Reply(404, {"error": {"code": "SecretNotFound", "message": "not found"}})
        version, value = wanted[-1]
        return Reply(200, self._bundle(name, version, value))

    def _set(self, match: Any, record: Recorded) -> Reply:
        challenge = self._challenge(record)
        if challenge is not None:
            return challenge
        if match["name"] in self.denied:
            return Reply(403, {"error": {"code": "Forbidden", "message": "forbidden by RBAC"}})
        value = json.loads(record.body)["value"]
        version = self.add(match["name"], value)
        return Reply(200, self._bundle(match["name"], version, value))

    def _token(self, match: Any, record: Recorded) -> Reply:
        if record.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return Reply(401, {"error": "invalid identity header"})
        token = secrets.token_urlsafe(32)
        self.tokens.add(token)
        expires = int(time.time()) + 3600
        return Reply(
            200,
            {
                "access_token": token,
                "expires_on": str(expires),
                "expires_in": "3600",
                "resource": "https://0.0.1",
                "token_type": "Bearer",
            },
        )
