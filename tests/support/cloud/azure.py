"""A fake Azure Key Vault (`GET/PUT /secrets/{name}[/{version}]`, TLS, bearer challenge) and an
App Service managed-identity token endpoint, so `DefaultAzureCredential` works unchanged.

It also holds RSA keys (`GET /keys/{name}[/{version}]`, `POST /keys/{name}/{version}/wrapkey` and
`/unwrapkey` with RSA-OAEP-256). `CryptographyClient` parses key ids as `https://host/keys/...`
with no path prefix, so key tests set `AZURE_KEYVAULT_URL_TEMPLATE` to `key_vault_url_template`
(the vault name is not part of the URL there).

Key Vault's SDK first sends an unauthenticated request, reads the `WWW-Authenticate` challenge,
then fetches a token for the challenge's resource and retries. The SDK checks that the resource
domain is a parent of the vault host; for `127.0.0.1` the parent `0.0.1` satisfies that check.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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
    keys_: dict[str, list[tuple[str, rsa.RSAPrivateKey]]] = field(default_factory=dict)
    keys_get_denied: set[str] = field(default_factory=set)  # no keys/get: no local wrap

    def __post_init__(self) -> None:
        secret = r"/(?P<vault>[^/]+)/secrets/(?P<name>[A-Za-z0-9-]+)(?:/(?P<version>[A-Za-z0-9]*))?"
        self.server.route("GET", secret)(self._get)
        self.server.route("PUT", secret)(self._set)
        self.identity.route("GET", r"/msi/token")(self._token)
        key = r"(?:/[^/]+)?/keys/(?P<name>[A-Za-z0-9-]+)(?:/(?P<version>[A-Za-z0-9]*))?"
        self.server.route("GET", key)(self._get_key)
        self.server.route("POST", key + r"/(?P<op>wrapkey|unwrapkey)")(self._key_operation)

    def add(self, name: str, value: str) -> str:
        version = secrets.token_hex(16)
        self.secrets_.setdefault(name, []).append((version, value))
        return version

    def add_key(self, name: str) -> str:
        """A new RSA-2048 version of key `name`; returns the version."""
        version = secrets.token_hex(16)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys_.setdefault(name, []).append((version, private))
        return version

    @property
    def vault_url_template(self) -> str:
        return self.server.url + "/{vault}"

    @property
    def key_vault_url_template(self) -> str:
        return self.server.url

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

    # ---- keys -------------------------------------------------------------------------------

    def _find_key(self, match: Any) -> tuple[str, rsa.RSAPrivateKey] | None:
        versions = self.keys_.get(match["name"]) or []
        wanted = [v for v in versions if match["version"] in (None, "", v[0])]
        return wanted[-1] if wanted else None

    def _key_denied(self, match: Any, record: Recorded) -> Reply | None:
        challenge = self._challenge(record)
        if challenge is not None:
            return challenge
        if match["name"] in self.denied:
            return Reply(403, {"error": {"code": "Forbidden", "message": "forbidden by RBAC"}})
        return None

    def _get_key(self, match: Any, record: Recorded) -> Reply:
        refused = self._key_denied(match, record)
        if refused is not None:
            return refused
        if match["name"] in self.keys_get_denied:
            return Reply(403, {"error": {"code": "Forbidden", "message": "no keys/get"}})
        found = self._find_key(match)
        if found is None:
            return Reply(404, {"error": {"code": "KeyNotFound", "message": "not found"}})
        version, private = found
        numbers = private.public_key().public_numbers()
        return Reply(
            200,
            {
                "key": {
                    "kid": f"{self.server.url}/keys/{match['name']}/{version}",
                    "kty": "RSA",
                    "key_ops": ["wrapKey", "unwrapKey", "encrypt", "decrypt"],
                    "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                },
                "attributes": {"enabled": True, "created": 1, "updated": 1},
            },
        )

    def _key_operation(self, match: Any, record: Recorded) -> Reply:
        refused = self._key_denied(match, record)
        if refused is not None:
            return refused
        found = self._find_key(match)
        if found is None:
            return Reply(404, {"error": {"code": "KeyNotFound", "message": "not found"}})
        version, private = found
        body = json.loads(record.body)
        if body.get("alg") != "RSA-OAEP-256":
            return Reply(400, {"error": {"code": "BadParameter", "message": "algorithm"}})
        oaep = padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        )
        value = base64.urlsafe_b64decode(body["value"] + "=" * (-len(body["value"]) % 4))
        try:
            if match["op"] == "wrapkey":
                result = private.public_key().encrypt(value, oaep)
            else:
                result = private.decrypt(value, oaep)
        except ValueError:
            return Reply(400, {"error": {"code": "BadParameter", "message": "decryption failed"}})
        kid = f"{self.server.url}/keys/{match['name']}/{version}"
        return Reply(200, {"kid": kid, "value": _b64url(result)})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
