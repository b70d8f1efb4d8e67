"""Azure Key Vault keys: `azure-kv-key://<vault-name>/<key-name>[/<version>]`, wrapkey/unwrapkey
with RSA-OAEP-256 through azure-keyvault-keys' `CryptographyClient`.

The credential (`DefaultAzureCredential`), vault URL (`AZURE_KEYVAULT_URL_TEMPLATE`, default
`https://{vault}.vault.azure.net`), timeouts and retry settings are the Key Vault secret
provider's. Unlike AWS, GCP and Vault ciphertexts, an RSA-OAEP wrap does not say which key version
made it, and unwrapping needs that version; so the wrapped bytes are `<version>.` followed by the
wrapped key, and a rotated (new-version) Key Vault key keeps old wraps readable. Wrapping with a
versionless reference needs `keys/get` (the SDK then wraps locally with the public key and learns
the version); without it, pin the version in the reference. Role: 'Key Vault Crypto Service
Encryption User' on the key (get, wrapKey, unwrapKey).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

from app.secrets.errors import (
    SecretAccessDenied,
    SecretFetchError,
    SecretNotFound,
)
from app.secrets.providers import azure as provider
from app.secrets.providers._logging import quiet_sdk_loggers

ALGORITHM = KeyWrapAlgorithm.rsa_oaep_256
_VERSION = re.compile(rb"[A-Za-z0-9]{1,64}")


def translate(exc: Exception) -> SecretFetchError:
    """Key wording for 404/403/400; authentication, throttling and network as the provider."""
    if isinstance(exc, ResourceNotFoundError):
        return SecretNotFound("Azure Key Vault has no such key or version (404)")
    if isinstance(exc, HttpResponseError) and exc.status_code == 403:
        return SecretAccessDenied(
            "Azure Key Vault refused the key operation (403); the identity needs the "
            "'Key Vault Crypto Service Encryption User' role on this key"
        )
    if isinstance(exc, HttpResponseError) and exc.status_code == 400:
        return SecretFetchError(
            "Azure Key Vault could not unwrap the data key: it was not wrapped by this key "
            "version (400)"
        )
    return provider.translate(exc)


class AzureKeyWrapper:
    def __init__(
        self, vault: str, name: str, version: str | None, timeout: float, template: str
    ) -> None:
        self._vault_url = template.format(vault=vault).rstrip("/")
        self._name, self._version = name, version
        self._timeout = timeout
        self._lock = threading.Lock()
        self._credential: Any = None
        self._clients: dict[str, Any] = {}

    def _client(self, version: str | None) -> Any:
        with self._lock:
            if self._credential is None:
                self._credential = DefaultAzureCredential()
            key_id = f"{self._vault_url}/keys/{self._name}" + (f"/{version}" if version else "")
            if key_id not in self._clients:
                self._clients[key_id] = CryptographyClient(
                    key_id,
                    self._credential,
                    retry_total=2,
                    connection_timeout=min(5.0, self._timeout / 2),
                    read_timeout=self._timeout,
                )
            return self._clients[key_id]

    def wrap(self, plaintext: bytes) -> bytes:
        try:
            client = self._client(self._version)
            result = client.wrap_key(ALGORITHM, plaintext)
            version: str = client.key_id.rstrip("/").split("/keys/", 1)[1].partition("/")[2]
        except Exception as exc:
            raise translate(exc) from None
        if not version:
            raise SecretFetchError(
                "cannot tell which Key Vault key version wrapped the data key: pin it in the "
                "reference (azure-kv-key://<vault>/<key>/<version>) or grant keys/get"
            )
        return version.encode("ascii") + b"." + bytes(result.encrypted_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        version, sep, encrypted = wrapped.partition(b".")
        if not sep or not _VERSION.fullmatch(version) or not encrypted:
            raise SecretFetchError("not a Key Vault wrapped key (<version>.<wrapped key>)")
        try:
            result = self._client(version.decode("ascii")).unwrap_key(ALGORITHM, encrypted)
        except Exception as exc:
            raise translate(exc) from None
        return bytes(result.key)

    def close(self) -> None:
        with self._lock:
            clients, credential = list(self._clients.values()), self._credential
            self._clients, self._credential = {}, None
        for client in clients:
            client.close()
        if credential is not None:
            credential.close()


def create_wrapper(path: str, timeout: float) -> AzureKeyWrapper:
    try:
        vault, name, version = provider.split_path(path)
    except SecretFetchError:
        raise SecretFetchError(
            "expected azure-kv-key://<vault-name>/<key-name>[/<version>] "
            "(letters, digits and dashes)"
        ) from None
    quiet_sdk_loggers("azure", "msal", "urllib3")
    template = os.environ.get(provider.URL_TEMPLATE_VARIABLE) or provider.DEFAULT_URL_TEMPLATE
    return AzureKeyWrapper(vault, name, version, timeout, template)
