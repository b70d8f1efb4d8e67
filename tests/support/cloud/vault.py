"""A fake Vault speaking the few documented endpoints the provider uses:
AppRole/Kubernetes login, KV v2 read/write (`/v1/<mount>/data/<path>`), dynamic credentials
(`/v1/<mount>/creds/<role>`), lease renewal (`/v1/sys/leases/renew`), and transit
encrypt/decrypt (`/v1/<mount>/encrypt|decrypt/<key>`, versioned `vault:v<n>:` ciphertexts made
with real AES-GCM keys held here)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.cloud.http import FakeServer, Recorded, Reply

DENIED = Reply(403, {"errors": ["permission denied"]})


@dataclass
class Lease:
    lease_id: str
    data: dict[str, str]
    ttl: int
    max_ttl: int
    granted: int = 0  # seconds of life given so far (for the max TTL cap)


@dataclass
class FakeVault:
    server: FakeServer = field(default_factory=FakeServer)
    kv: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "mount/path" -> versions
    tokens: set[str] = field(default_factory=set)
    denied_paths: set[str] = field(default_factory=set)
    approle: tuple[str, str] | None = None  # (role_id, secret_id)
    kubernetes: tuple[str, str] | None = None  # (role, jwt)
    login_ttl: int = 3600
    lease_ttl: int = 60
    lease_max_ttl: int = 3600
    leases: dict[str, Lease] = field(default_factory=dict)
    issue_credentials: Callable[[str], dict[str, str]] | None = None  # role -> username/password
    transit: dict[str, list[bytes]] = field(default_factory=dict)  # "mount/key" -> AES keys

    def __post_init__(self) -> None:
        route = self.server.route
        route("POST", r"/v1/auth/(?P<mount>[^/]+)/login")(self._login)
        route("GET", r"/v1/sys/leases/renew")(lambda m, r: Reply(405))
        route("PUT", r"/v1/sys/leases/renew")(self._renew)
        route("POST", r"/v1/sys/leases/renew")(self._renew)
        route("GET", r"/v1/(?P<mount>[^/]+)/creds/(?P<role>[^/]+)")(self._creds)
        route("GET", r"/v1/(?P<mount>[^/]+)/data/(?P<path>.+)")(self._read)
        route("POST", r"/v1/(?P<mount>[^/]+)/data/(?P<path>.+)")(self._write)
        route("PUT", r"/v1/(?P<mount>[^/]+)/data/(?P<path>.+)")(self._write)
        transit = r"/v1/(?P<mount>[^/]+)/(?P<op>encrypt|decrypt)/(?P<key>[^/]+)"
        route("POST", transit)(self._transit)
        route("PUT", transit)(self._transit)

    # ---- helpers for tests ----------------------------------------------------------------

    def new_token(self) -> str:
        token = "hvs." + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return token

    def put(self, key: str, data: dict[str, Any]) -> int:
        self.kv.setdefault(key, []).append(dict(data))
        return len(self.kv[key])

    def rotate_transit_key(self, mount: str, name: str) -> int:
        """Create the transit key, or add a version; returns the new version number."""
        self.transit.setdefault(f"{mount}/{name}", []).append(os.urandom(32))
        return len(self.transit[f"{mount}/{name}"])

    # ---- handlers ---------------------------------------------------------------------------

    def _authorized(self, record: Recorded, path: str) -> bool:
        return record.headers.get("X-Vault-Token") in self.tokens and path not in self.denied_paths

    def _login(self, match: Any, record: Recorded) -> Reply:
        body = json.loads(record.body or b"{}")
        ok = False
        if match["mount"] == "approle" and self.approle is not None:
            ok = (body.get("role_id"), body.get("secret_id")) == self.approle
        if match["mount"] == "kubernetes" and self.kubernetes is not None:
            ok = (body.get("role"), body.get("jwt")) == self.kubernetes
        if not ok:
            return Reply(400, {"errors": ["invalid credentials"]})
        return Reply(
            200,
            {
                "auth": {
                    "client_token": self.new_token(),
                    "renewable": True,
                    "lease_duration": self.login_ttl,
                    "policies": ["app"],
                }
            },
        )

    def _read(self, match: Any, record: Recorded) -> Reply:
        key = f"{match['mount']}/{match['path']}"
        if not self._authorized(record, key):
            return DENIED
        versions = self.kv.get(key)
        if not versions:
            return Reply(404, {"errors": []})
        query = dict(p.split("=", 1) for p in record.path.partition("?")[2].split("&") if "=" in p)
        number = int(query.get("version") or len(versions))
        if not 1 <= number <= len(versions):
            return Reply(404, {"errors": []})
        return Reply(
            200,
            {
                "data": {
                    "data": versions[number - 1],
                    "metadata": {"version": number, "deletion_time": "", "destroyed": False},
                }
            },
        )

    def _write(self, match: Any, record: Recorded) -> Reply:
        key = f"{match['mount']}/{match['path']}"
        if not self._authorized(record, key):
            return DENIED
        body = json.loads(record.body)
        cas = (body.get("options") or {}).get("cas")
        if cas is not None and int(cas) != len(self.kv.get(key, [])):
            return Reply(
                400, {"errors": ["check-and-set parameter did not match the current version"]}
            )
        number = self.put(key, body["data"])
        return Reply(200, {"data": {"version": number}})

    def _creds(self, match: Any, record: Recorded) -> Reply:
        key = f"{match['mount']}/creds/{match['role']}"
        if not self._authorized(record, key):
            return DENIED
        assert self.issue_credentials is not None
        data = self.issue_credentials(match["role"])
        lease = Lease(
            f"{key}/{secrets.token_hex(8)}",
            data,
            self.lease_ttl,
            self.lease_max_ttl,
            self.lease_ttl,
        )
        self.leases[lease.lease_id] = lease
        return Reply(
            200,
            {
                "lease_id": lease.lease_id,
                "lease_duration": lease.ttl,
                "renewable": True,
                "data": data,
            },
        )

    def _renew(self, match: Any, record: Recorded) -> Reply:
        if record.headers.get("X-Vault-Token") not in self.tokens:
            return DENIED
        body = json.loads(record.body)
        lease = self.leases.get(body.get("lease_id", ""))
        if lease is None:
            return Reply(400, {"errors": ["lease not found"]})
        grant = min(int(body.get("increment") or lease.ttl), lease.max_ttl - lease.granted)
        lease.granted += grant
        return Reply(
            200, {"lease_id": lease.lease_id, "lease_duration": max(grant, 0), "renewable": True}
        )

    def _transit(self, match: Any, record: Recorded) -> Reply:
        name = f"{match['mount']}/{match['key']}"
        if not self._authorized(record, f"{match['mount']}/{match['op']}/{match['key']}"):
            return DENIED
        versions = self.transit.get(name)
        if not versions:
            return Reply(400, {"errors": ["encryption key not found"]})
        body = json.loads(record.body or b"{}")
        if match["op"] == "encrypt":
            plaintext = base64.b64decode(body["plaintext"])
            nonce = os.urandom(12)
            sealed = AESGCM(versions[-1]).encrypt(nonce, plaintext, None)
            ciphertext = f"vault:v{len(versions)}:" + base64.b64encode(nonce + sealed).decode()
            return Reply(200, {"data": {"ciphertext": ciphertext, "key_version": len(versions)}})
        try:
            _, version, payload = str(body["ciphertext"]).split(":", 2)
            raw = base64.b64decode(payload, validate=True)
            key = versions[int(version.removeprefix("v")) - 1]
            plaintext = AESGCM(key).decrypt(raw[:12], raw[12:], None)
        except (ValueError, IndexError, binascii.Error, InvalidTag):
            return Reply(400, {"errors": ["invalid ciphertext: unable to decrypt"]})
        return Reply(200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}})
