"""HashiCorp Vault: KV v2 secrets and leased dynamic credentials.

- `vault://<mount>/<path>[?version=N]#<key>` reads KV v2 (`GET /v1/<mount>/data/<path>`); the
  entry version is the KV version number.
- `vault://<mount>/creds/<role>` (e.g. `vault://database/creds/app`) reads a dynamic secret as ONE
  lease, so `username` and `password` always belong together. The lease is renewed
  (`PUT /v1/sys/leases/renew`) while Vault allows; when it would no longer stretch to half its
  original length (max TTL), new credentials are read while the old ones still have time left.
  `Fetched.ttl` tells the store when to come back.

Connection and auth use Vault's own variables: `VAULT_ADDR`, `VAULT_CACERT`, `VAULT_NAMESPACE`, and
one of: `VAULT_TOKEN`; AppRole (`VAULT_ROLE_ID`, `VAULT_SECRET_ID` or `VAULT_SECRET_ID_FILE`,
`VAULT_APPROLE_MOUNT`); Kubernetes (`VAULT_KUBERNETES_ROLE`, `VAULT_KUBERNETES_TOKEN_FILE`,
`VAULT_KUBERNETES_MOUNT`). `VAULT_AUTH_METHOD` (token|approle|kubernetes) forces the choice.
Login tokens are renewed by logging in again at two thirds of their TTL, or after a 403.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import hvac
import requests
from hvac import exceptions as hvac_exc

from app.secrets.documents import json_object
from app.secrets.errors import (
    SecretAccessDenied,
    SecretFetchError,
    SecretNotFound,
    SecretUnreachable,
)
from app.secrets.provider import Fetched, Reference
from app.secrets.providers._blocking import BlockingRunner
from app.secrets.providers._logging import quiet_sdk_loggers
from app.secrets.providers._options import split_options
from app.secrets.spec import SecretsConfig

T = TypeVar("T")
K8S_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def translate(exc: Exception) -> SecretFetchError:
    if isinstance(exc, SecretFetchError):
        return exc
    if isinstance(exc, hvac_exc.InvalidPath):
        return SecretNotFound("Vault has no secret at this path (404)")
    if isinstance(exc, hvac_exc.Forbidden | hvac_exc.Unauthorized):
        return SecretAccessDenied(
            f"Vault refused the request ({type(exc).__name__}); the "
            "policy needs 'read' on this path"
        )
    if isinstance(
        exc,
        hvac_exc.VaultDown
        | hvac_exc.InternalServerError
        | hvac_exc.BadGateway
        | hvac_exc.RateLimitExceeded,
    ):
        return SecretUnreachable(f"Vault is unavailable ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return SecretUnreachable(f"cannot reach Vault at VAULT_ADDR ({type(exc).__name__})")
    if isinstance(exc, hvac_exc.VaultError):
        return SecretFetchError(f"Vault error ({type(exc).__name__})")
    return SecretFetchError(f"unexpected error ({type(exc).__name__})")


@dataclass(frozen=True)
class VaultAuth:
    """How to obtain a token. Holds no secret itself: files and variables are read at login."""

    method: str  # token | approle | kubernetes
    mount: str = ""
    role: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultAuth:
        method = env.get("VAULT_AUTH_METHOD", "").strip().lower()
        if not method:
            if env.get("VAULT_ROLE_ID"):
                method = "approle"
            elif env.get("VAULT_KUBERNETES_ROLE"):
                method = "kubernetes"
            else:
                method = "token"
        if method == "approle":
            return cls("approle", env.get("VAULT_APPROLE_MOUNT", "approle"))
        if method == "kubernetes":
            return cls(
                "kubernetes",
                env.get("VAULT_KUBERNETES_MOUNT", "kubernetes"),
                env.get("VAULT_KUBERNETES_ROLE", ""),
            )
        if method == "token":
            return cls("token")
        raise SecretFetchError("VAULT_AUTH_METHOD must be token, approle or kubernetes")


def _read_file(variable: str, default: str | None = None) -> str:
    path = os.environ.get(variable) or default
    if not path:
        raise SecretAccessDenied(f"{variable} is not set")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        raise SecretAccessDenied(f"cannot read {variable} ({path})") from None


@dataclass
class _Lease:
    lease_id: str
    value: str = field(repr=False)  # the credentials document: never in a repr
    version: str
    duration: float  # as first granted
    expires_at: float  # monotonic
    renewable: bool


class VaultProvider:
    def __init__(self, timeout: float, auth: VaultAuth) -> None:
        self._timeout = timeout
        self._auth = auth
        self._runner = BlockingRunner("vault")
        self._lock = threading.Lock()
        self._client: Any = None
        self._token_renew_at: float | None = None  # monotonic; None = never (static token)
        self._leases: dict[str, _Lease] = {}

    # ---- client and login ---------------------------------------------------------------

    def _new_client(self) -> Any:
        address = os.environ.get("VAULT_ADDR")
        if not address:
            raise SecretFetchError("VAULT_ADDR is not set")
        verify: bool | str = os.environ.get("VAULT_CACERT") or True
        return hvac.Client(
            url=address,
            verify=verify,
            timeout=self._timeout,
            namespace=os.environ.get("VAULT_NAMESPACE") or None,
        )

    def _login(self, client: Any) -> None:
        auth = self._auth
        if auth.method == "token":
            token = os.environ.get("VAULT_TOKEN")
            if not token:
                token = _read_file("VAULT_TOKEN_FILE") if os.environ.get("VAULT_TOKEN_FILE") else ""
            if not token:
                raise SecretAccessDenied(
                    "no Vault credentials: set VAULT_TOKEN, AppRole "
                    "(VAULT_ROLE_ID) or Kubernetes (VAULT_KUBERNETES_ROLE)"
                )
            client.token = token
            self._token_renew_at = None
            return
        if auth.method == "approle":
            role_id = os.environ.get("VAULT_ROLE_ID", "")
            secret_id = os.environ.get("VAULT_SECRET_ID") or _read_file("VAULT_SECRET_ID_FILE")
            response = client.auth.approle.login(
                role_id=role_id, secret_id=secret_id, mount_point=auth.mount
            )
        else:
            jwt = _read_file("VAULT_KUBERNETES_TOKEN_FILE", K8S_JWT_PATH)
            response = client.auth.kubernetes.login(role=auth.role, jwt=jwt, mount_point=auth.mount)
        ttl = float(response.get("auth", {}).get("lease_duration") or 0)
        self._token_renew_at = time.monotonic() + ttl * 2 / 3 if ttl > 0 else None

    def _authenticated(self, relogin: bool = False) -> Any:
        with self._lock:
            stale = self._token_renew_at is not None and time.monotonic() >= self._token_renew_at
            if self._client is None or relogin or stale:
                client = self._client or self._new_client()
                try:
                    self._login(client)
                except Exception as exc:
                    raise translate(exc) from None
                self._client = client
            return self._client

    def _call(self, operation: Callable[[Any], T]) -> T:
        """Run `operation(client)`; after a 403 with a login token, log in again once."""
        try:
            return operation(self._authenticated())
        except hvac_exc.Forbidden:
            if self._auth.method == "token":
                raise
        return operation(self._authenticated(relogin=True))

    # ---- reading ------------------------------------------------------------------------

    def _read_kv(self, mount: str, path: str, version: int | None) -> Fetched:
        response = self._call(
            lambda c: c.secrets.kv.v2.read_secret_version(
                path=path, version=version, mount_point=mount, raise_on_deleted_version=True
            )
        )
        data = response.get("data") or {}
        version_number = (data.get("metadata") or {}).get("version")
        return Fetched(
            json.dumps(data.get("data") or {}),
            version=str(version_number) if version_number is not None else None,
        )

    def _read_lease(self, key: str) -> Fetched:
        lease = self._leases.get(key)
        now = time.monotonic()
        if lease is not None and lease.renewable and lease.expires_at - now > 1:
            renewed = self._renew(lease)
            if renewed is not None:
                return renewed
        response = self._call(lambda c: c.read(key))
        if not response or "data" not in response:
            raise SecretNotFound("Vault returned no credentials at this path")
        lease_id = str(response.get("lease_id") or "")
        duration = float(response.get("lease_duration") or 0)
        value = json.dumps(response["data"])
        version = "lease-" + hashlib.sha256(lease_id.encode()).hexdigest()[:12]
        if lease_id and duration > 0:
            self._leases[key] = _Lease(
                lease_id, value, version, duration, now + duration, bool(response.get("renewable"))
            )
        return Fetched(value, version=version, ttl=duration if duration > 0 else None)

    def _renew(self, lease: _Lease) -> Fetched | None:
        """Extend the lease; None means read new credentials instead."""
        try:
            response = self._call(
                lambda c: c.sys.renew_lease(lease_id=lease.lease_id, increment=int(lease.duration))
            )
        except (hvac_exc.InvalidRequest, hvac_exc.InvalidPath, hvac_exc.Forbidden):
            return None  # expired, revoked or not renewable: read a new lease
        granted = float(response.get("lease_duration") or 0)
        if granted < lease.duration / 2:
            return None  # close to max TTL: switch while the old credentials still work
        lease.expires_at = time.monotonic() + granted
        return Fetched(lease.value, version=lease.version, ttl=granted)

    def _fetch(self, path: str) -> Fetched:
        base, options = split_options(path, frozenset({"version"}))
        mount, _, rest = base.partition("/")
        if not mount or not rest:
            raise SecretFetchError("expected vault://<mount>/<path>#<key>")
        try:
            if rest.startswith("creds/"):
                return self._read_lease(f"{mount}/{rest}")
            version = int(options["version"]) if "version" in options else None
            return self._read_kv(mount, rest, version)
        except ValueError:
            raise SecretFetchError("?version= must be a number") from None
        except Exception as exc:
            raise translate(exc) from None

    async def fetch(self, reference: Reference) -> Fetched:
        return await self._runner.run(self._fetch, reference.path)

    # ---- writing (keys rotate --ref), KV v2 only, needs 'create'/'update' on the path -------

    def _write(self, path: str, value: str, expected_version: str | None) -> str | None:
        base, _ = split_options(path, frozenset({"version"}))
        mount, _, rest = base.partition("/")
        document = json_object(value, "a Vault KV v2 secret must be written as a JSON object")
        cas = int(expected_version) if expected_version and expected_version.isdigit() else None
        try:
            response = self._call(
                lambda c: c.secrets.kv.v2.create_or_update_secret(
                    path=rest, secret=document, cas=cas, mount_point=mount
                )
            )
        except hvac_exc.InvalidRequest:
            raise SecretFetchError(
                "Vault rejected the write (check-and-set: the secret changed "
                "since it was read; run the rotation again)"
            ) from None
        except Exception as exc:
            raise translate(exc) from None
        version = (response.get("data") or {}).get("version")
        return str(version) if version is not None else None

    async def write(
        self, reference: Reference, value: str, expected_version: str | None = None
    ) -> str | None:
        """New KV version, with check-and-set against the version the rotation read."""
        return await self._runner.run(self._write, reference.path, value, expected_version)

    async def aclose(self) -> None:
        self._runner.close()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.adapter.close()


def create_provider(settings: SecretsConfig) -> VaultProvider:
    quiet_sdk_loggers("hvac", "urllib3")
    return VaultProvider(settings.secrets_fetch_timeout_seconds, VaultAuth.from_env(os.environ))
