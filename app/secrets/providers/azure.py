"""Azure Key Vault: `azure-kv://<vault-name>/<secret-name>[/<version>][#json-key]`.

Uses azure-keyvault-secrets with `DefaultAzureCredential` (workload identity, managed identity,
`AZURE_CLIENT_ID`/`AZURE_TENANT_ID`/`AZURE_CLIENT_SECRET`, Azure CLI), in this provider's thread
pool. The vault URL is `https://<vault-name>.vault.azure.net`; sovereign clouds and private
endpoints set `AZURE_KEYVAULT_URL_TEMPLATE` (e.g. `https://{vault}.vault.azure.cn`). A custom CA
(TLS inspection proxies) is taken from `REQUESTS_CA_BUNDLE`, as for every requests-based client.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from app.secrets.errors import (
    SecretAccessDenied,
    SecretFetchError,
    SecretNotFound,
    SecretUnreachable,
)
from app.secrets.provider import Fetched, Reference
from app.secrets.providers._blocking import BlockingRunner
from app.secrets.providers._logging import quiet_sdk_loggers
from app.secrets.spec import SecretsConfig

URL_TEMPLATE_VARIABLE = "AZURE_KEYVAULT_URL_TEMPLATE"
DEFAULT_URL_TEMPLATE = "https://{vault}.vault.azure.net"

_PATH = re.compile(
    r"^(?P<vault>[A-Za-z0-9-]{3,24})/(?P<name>[A-Za-z0-9-]{1,127})(?:/(?P<version>[A-Za-z0-9]+))?$"
)


def split_path(path: str) -> tuple[str, str, str | None]:
    match = _PATH.match(path)
    if match is None:
        raise SecretFetchError(
            "expected azure-kv://<vault-name>/<secret-name>[/<version>] "
            "(letters, digits and dashes)"
        )
    return match["vault"], match["name"], match["version"]


def translate(exc: Exception) -> SecretFetchError:
    if isinstance(exc, ResourceNotFoundError):
        return SecretNotFound("Azure Key Vault has no such secret or version (404)")
    if isinstance(exc, ClientAuthenticationError):
        return SecretAccessDenied(f"Azure Key Vault authentication failed ({type(exc).__name__})")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        if status == 403:
            return SecretAccessDenied(
                "Azure Key Vault refused the read (403); the identity needs "
                "the 'Key Vault Secrets User' role on this secret"
            )
        if status == 429 or status >= 500:
            return SecretUnreachable(f"Azure Key Vault is unavailable ({status})")
        return SecretFetchError(f"Azure Key Vault error ({status})")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return SecretUnreachable(f"cannot reach Azure Key Vault ({type(exc).__name__})")
    return SecretFetchError(f"unexpected error ({type(exc).__name__})")


class AzureKeyVaultProvider:
    def __init__(self, timeout: float, url_template: str) -> None:
        self._timeout = timeout
        self._url_template = url_template
        self._runner = BlockingRunner("azure-kv")
        self._lock = threading.Lock()
        self._credential: Any = None
        self._clients: dict[str, Any] = {}

    def _client(self, vault: str) -> Any:
        with self._lock:
            if self._credential is None:
                self._credential = DefaultAzureCredential()
            if vault not in self._clients:
                self._clients[vault] = SecretClient(
                    vault_url=self._url_template.format(vault=vault),
                    credential=self._credential,
                    retry_total=2,
                    connection_timeout=min(5.0, self._timeout / 2),
                    read_timeout=self._timeout,
                )
            return self._clients[vault]

    def _get(self, vault: str, name: str, version: str | None) -> Fetched:
        try:
            secret = self._client(vault).get_secret(name, version)
        except Exception as exc:
            raise translate(exc) from None
        if secret.value is None:
            raise SecretNotFound("the Azure Key Vault secret has no value")
        return Fetched(str(secret.value), version=secret.properties.version)

    async def fetch(self, reference: Reference) -> Fetched:
        return await self._runner.run(self._get, *split_path(reference.path))

    # ---- writing (keys rotate --ref), needs the 'Key Vault Secrets Officer' role -------------

    def _set(self, vault: str, name: str, value: str) -> str | None:
        try:
            secret = self._client(vault).set_secret(name, value)
        except Exception as exc:
            raise translate(exc) from None
        version: str | None = secret.properties.version
        return version

    async def write(
        self, reference: Reference, value: str, expected_version: str | None = None
    ) -> str | None:
        """A new version of the secret; readers without a pinned version get it."""
        vault, name, _ = split_path(reference.path)
        return await self._runner.run(self._set, vault, name, value)

    async def aclose(self) -> None:
        with self._lock:
            clients, credential = list(self._clients.values()), self._credential
            self._clients, self._credential = {}, None
        for client in clients:
            client.close()
        if credential is not None:
            credential.close()
        self._runner.close()


def create_provider(settings: SecretsConfig) -> AzureKeyVaultProvider:
    quiet_sdk_loggers("azure", "msal", "urllib3")
    template = os.environ.get(URL_TEMPLATE_VARIABLE) or DEFAULT_URL_TEMPLATE
    return AzureKeyVaultProvider(settings.secrets_fetch_timeout_seconds, template)
