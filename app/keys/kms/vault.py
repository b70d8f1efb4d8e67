"""Vault transit: `vault-transit://<mount>/<key-name>`, `POST <mount>/encrypt|decrypt/<key>`.

Connection and login are the Vault secret provider's (`VAULT_ADDR`, token, AppRole or Kubernetes
auth, re-login after a 403), reused through its `_call`. The wrapped bytes are Vault's own
`vault:v<n>:...` ciphertext, which names the transit key version, so rotating the transit key
keeps old wraps readable (`min_decryption_version` permitting). Policies: the application needs
`update` on `<mount>/decrypt/<key>`, the rotation job on `<mount>/encrypt/<key>`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from typing import Any

from hvac import exceptions as hvac_exc

from app.secrets.errors import SecretAccessDenied, SecretFetchError, SecretNotFound
from app.secrets.providers import vault as provider
from app.secrets.providers._logging import quiet_sdk_loggers

_PATH = re.compile(r"^(?P<mount>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)/(?P<key>[A-Za-z0-9_.-]+)$")


def translate(exc: Exception) -> SecretFetchError:
    if isinstance(exc, hvac_exc.InvalidPath):
        return SecretNotFound("Vault has no transit mount or key at this path (404)")
    if isinstance(exc, hvac_exc.Forbidden | hvac_exc.Unauthorized):
        return SecretAccessDenied(
            f"Vault refused the transit request ({type(exc).__name__}); the policy needs "
            "'update' on <mount>/decrypt/<key> (<mount>/encrypt/<key> to wrap)"
        )
    if isinstance(exc, hvac_exc.InvalidRequest):
        # Vault's message may quote the ciphertext: keep only the kind.
        return SecretFetchError(
            "Vault transit refused to unwrap or wrap (InvalidRequest): no such key, or the "
            "data key was not wrapped by it"
        )
    return provider.translate(exc)


class VaultTransitWrapper:
    def __init__(self, mount: str, key: str, timeout: float) -> None:
        self._mount, self._key = mount, key
        self._vault = provider.VaultProvider(timeout, provider.VaultAuth.from_env(os.environ))

    def _call(self, operation: Callable[[Any], Any]) -> Any:
        try:
            return self._vault._call(operation)
        except Exception as exc:
            raise translate(exc) from None

    def wrap(self, plaintext: bytes) -> bytes:
        response = self._call(
            lambda c: c.secrets.transit.encrypt_data(
                name=self._key,
                plaintext=base64.b64encode(plaintext).decode("ascii"),
                mount_point=self._mount,
            )
        )
        ciphertext = (response.get("data") or {}).get("ciphertext")
        if not isinstance(ciphertext, str) or not ciphertext.startswith("vault:"):
            raise SecretFetchError("Vault transit returned no ciphertext")
        return ciphertext.encode("ascii")

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            ciphertext = wrapped.decode("ascii")
        except UnicodeDecodeError:
            raise SecretFetchError("not a Vault transit ciphertext") from None
        response = self._call(
            lambda c: c.secrets.transit.decrypt_data(
                name=self._key, ciphertext=ciphertext, mount_point=self._mount
            )
        )
        plaintext = (response.get("data") or {}).get("plaintext")
        try:
            return base64.b64decode(plaintext, validate=True) if isinstance(plaintext, str) else b""
        except (binascii.Error, ValueError):
            raise SecretFetchError(
                "Vault transit returned a plaintext that is not base64"
            ) from None

    def close(self) -> None:
        # VaultProvider.aclose does only this, synchronously; no event loop here.
        self._vault._runner.close()
        client, self._vault._client = self._vault._client, None
        if client is not None:
            client.adapter.close()


def create_wrapper(path: str, timeout: float) -> VaultTransitWrapper:
    match = _PATH.match(path)
    if match is None:
        raise SecretFetchError("expected vault-transit://<mount>/<key-name>")
    quiet_sdk_loggers("hvac", "urllib3")
    return VaultTransitWrapper(match["mount"], match["key"], timeout)
