"""A fake GCP Secret Manager REST API (`v1`): `versions/*:access` and `:addVersion`, plus an
OAuth token endpoint, and a service-account key file (generated now) whose `token_uri` is here.
It also answers Cloud KMS `cryptoKeys/*:encrypt` and `:decrypt` (real AES-GCM under versioned
keys held here, honouring `additionalAuthenticatedData`)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.cloud.http import FakeServer, Recorded, Reply

PROJECT = "demo-project"


def _error(code: int, status: str) -> Reply:
    return Reply(code, {"error": {"code": code, "message": status.lower(), "status": status}})


@dataclass
class FakeSecretManager:
    server: FakeServer = field(default_factory=FakeServer)
    versions: dict[str, list[str]] = field(default_factory=dict)  # "projects/p/secrets/s"
    denied: set[str] = field(default_factory=set)
    issued_tokens: set[str] = field(default_factory=set)
    public_keys: list[Any] = field(default_factory=list)  # of the service accounts issued
    crypto_keys: dict[str, list[bytes]] = field(default_factory=dict)  # KMS name -> versions

    def __post_init__(self) -> None:
        self.server.route("POST", r"/token")(self._token)
        self.server.route(
            "GET", r"/v1/(?P<secret>projects/[^/]+/secrets/[^/]+)/versions/(?P<v>[^/:]+):access"
        )(self._access)
        self.server.route("POST", r"/v1/(?P<secret>projects/[^/]+/secrets/[^/]+):addVersion")(
            self._add
        )
        self.server.route(
            "POST",
            r"/v1/(?P<key>projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:]+)"
            r":(?P<verb>encrypt|decrypt)",
        )(self._kms)

    def add(self, name: str, value: str) -> int:
        self.versions.setdefault(f"projects/{PROJECT}/secrets/{name}", []).append(value)
        return len(self.versions[f"projects/{PROJECT}/secrets/{name}"])

    def rotate_crypto_key(self, key_ring: str, name: str, location: str = "global") -> str:
        """Create a KMS crypto key, or add a primary version; returns its resource name."""
        resource = f"projects/{PROJECT}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{name}"
        self.crypto_keys.setdefault(resource, []).append(os.urandom(32))
        return resource

    def credentials_file(self, directory: Path) -> Path:
        """A service-account key (fresh RSA key) whose token endpoint is this fake."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": f"app@{PROJECT}.iam.gserviceaccount.com",
            "client_id": str(secrets.randbelow(10**20)),
            "token_uri": f"{self.server.url}/token",
        }
        self.public_keys.append(key.public_key())
        path = directory / "gcp-service-account.json"
        path.write_text(json.dumps(info))
        return path

    def _authorized(self, record: Recorded) -> bool:
        """An access token from /token, or a self-signed JWT (what google-auth sends for
        service accounts) signed by a key this fake issued."""
        scheme, _, token = (record.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or not token:
            return False
        if token in self.issued_tokens:
            return True
        for public_key in self.public_keys:
            try:
                jwt.decode(
                    token,
                    public_key,
                    algorithms=["RS256"],
                    audience="https://secretmanager.googleapis.com/",
                )
            except jwt.PyJWTError:
                continue
            return True
        return False

    def _token(self, match: Any, record: Recorded) -> Reply:
        token = "ya29." + secrets.token_urlsafe(32)
        self.issued_tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _access(self, match: Any, record: Recorded) -> Reply:
        if not self._authorized(record):
            return _error(401, "UNAUTHENTICATED")
        secret = match["secret"]
        if secret in self.denied:
            return _error(403, "PERMISSION_DENIED")
        versions = self.versions.get(secret)
        if not versions:
            return _error(404, "NOT_FOUND")
        number = len(versions) if match["v"] == "latest" else int(match["v"])
        if not 1 <= number <= len(versions):
            return _error(404, "NOT_FOUND")
        data = base64.b64encode(versions[number - 1].encode()).decode()
        return Reply(200, {"name": f"{secret}/versions/{number}", "payload": {"data": data}})

    def _add(self, match: Any, record: Recorded) -> Reply:
        if not self._authorized(record):
            return _error(401, "UNAUTHENTICATED")
        secret = match["secret"]
        if secret in self.denied or secret not in self.versions:
            return _error(
                403 if secret in self.denied else 404,
                "PERMISSION_DENIED" if secret in self.denied else "NOT_FOUND",
            )
        payload = json.loads(record.body)["payload"]["data"]
        self.versions[secret].append(base64.b64decode(payload).decode())
        return Reply(
            200, {"name": f"{secret}/versions/{len(self.versions[secret])}", "state": "ENABLED"}
        )

    def _kms(self, match: Any, record: Recorded) -> Reply:
        if not self._authorized(record):
            return _error(401, "UNAUTHENTICATED")
        key = match["key"]
        if key in self.denied:
            return _error(403, "PERMISSION_DENIED")
        versions = self.crypto_keys.get(key)
        if not versions:
            return _error(404, "NOT_FOUND")
        body = json.loads(record.body)
        aad = base64.b64decode(body.get("additionalAuthenticatedData") or "")
        if match["verb"] == "encrypt":
            nonce = os.urandom(12)
            sealed = AESGCM(versions[-1]).encrypt(nonce, base64.b64decode(body["plaintext"]), aad)
            ciphertext = bytes([len(versions)]) + nonce + sealed  # names its key version
            return Reply(
                200,
                {
                    "name": f"{key}/cryptoKeyVersions/{len(versions)}",
                    "ciphertext": base64.b64encode(ciphertext).decode(),
                },
            )
        try:
            raw = base64.b64decode(body["ciphertext"], validate=True)
            plaintext = AESGCM(versions[raw[0] - 1]).decrypt(raw[1:13], raw[13:], aad)
        except (IndexError, ValueError, binascii.Error, InvalidTag):
            return _error(400, "INVALID_ARGUMENT")
        return Reply(200, {"plaintext": base64.b64encode(plaintext).decode(), "usedPrimary": True})
