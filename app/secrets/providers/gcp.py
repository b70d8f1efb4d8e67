"""GCP Secret Manager: `gcp-sm://projects/<p>/secrets/<name>[/versions/<v>][#json-key]`.

Uses google-cloud-secret-manager over its REST transport (no gRPC threads to survive forks) with
Application Default Credentials (workload identity, `GOOGLE_APPLICATION_CREDENTIALS`, metadata
server). `GCP_SECRET_MANAGER_ENDPOINT` overrides the endpoint (regional or private endpoints).
Permission errors stay permission errors: pydantic-settings' GCP source reports them as a
missing value, which hides a broken IAM binding until the service misbehaves.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry, if_exception_type
from google.auth import exceptions as auth_exc
from google.cloud import secretmanager_v1

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

ENDPOINT_VARIABLE = "GCP_SECRET_MANAGER_ENDPOINT"

_NAME = re.compile(r"^projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+(?:/versions/[^/]+)?$")


def version_name(path: str) -> str:
    """The resource to access: an explicit version, or `latest`."""
    if not _NAME.match(path):
        raise SecretFetchError(
            "expected gcp-sm://projects/<project>/secrets/<name>[/versions/<version>]"
        )
    return path if "/versions/" in path else f"{path}/versions/latest"


def translate(exc: Exception) -> SecretFetchError:
    if isinstance(exc, gexc.NotFound):
        return SecretNotFound("GCP Secret Manager has no such secret or version (NOT_FOUND)")
    if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
        return SecretAccessDenied(
            f"GCP Secret Manager refused the read ({type(exc).__name__}); the service account "
            "needs roles/secretmanager.secretAccessor on this secret"
        )
    if isinstance(exc, gexc.FailedPrecondition):
        return SecretNotFound("the secret version is disabled or destroyed (FAILED_PRECONDITION)")
    if isinstance(
        exc,
        gexc.ServiceUnavailable
        | gexc.DeadlineExceeded
        | gexc.InternalServerError
        | gexc.RetryError
        | gexc.TooManyRequests
        | gexc.GatewayTimeout,
    ):
        return SecretUnreachable(f"GCP Secret Manager is unavailable ({type(exc).__name__})")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return SecretAccessDenied("no Google credentials found (Application Default Credentials)")
    if isinstance(exc, auth_exc.RefreshError):
        return SecretAccessDenied("Google credentials could not obtain an access token")
    if isinstance(exc, auth_exc.TransportError | requests.ConnectionError | requests.Timeout):
        return SecretUnreachable(f"cannot reach GCP Secret Manager ({type(exc).__name__})")
    if isinstance(exc, gexc.GoogleAPICallError):
        return SecretFetchError(f"GCP Secret Manager error ({type(exc).__name__})")
    return SecretFetchError(f"unexpected error ({type(exc).__name__})")


class GcpSecretManagerProvider:
    def __init__(self, timeout: float, endpoint: str | None) -> None:
        self._timeout = timeout
        self._endpoint = endpoint
        self._runner = BlockingRunner("gcp-sm")
        self._client: Any = None
        self._lock = threading.Lock()
        # Retry only what is transient, and never past our own fetch timeout.
        self._retry = Retry(
            predicate=if_exception_type(gexc.ServiceUnavailable, gexc.TooManyRequests),
            initial=0.2,
            maximum=2.0,
            multiplier=2.0,
            timeout=timeout * 0.8,
        )

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                options = ClientOptions(api_endpoint=self._endpoint) if self._endpoint else None
                self._client = secretmanager_v1.SecretManagerServiceClient(
                    transport="rest", client_options=options
                )
            return self._client

    def _access(self, name: str) -> Fetched:
        try:
            response = self._get_client().access_secret_version(
                name=name, retry=self._retry, timeout=self._timeout
            )
        except Exception as exc:
            raise translate(exc) from None
        try:
            value = bytes(response.payload.data).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretFetchError("the secret payload is not UTF-8 text") from None
        return Fetched(value, version=str(response.name).rsplit("/", 1)[-1] or None)

    async def fetch(self, reference: Reference) -> Fetched:
        return await self._runner.run(self._access, version_name(reference.path))

    # ---- writing (keys rotate --ref), needs secretmanager.versions.add ----------------------

    def _add(self, parent: str, value: str) -> str | None:
        try:
            version = self._get_client().add_secret_version(
                parent=parent, payload={"data": value.encode("utf-8")}, timeout=self._timeout
            )
        except Exception as exc:
            raise translate(exc) from None
        return str(version.name).rsplit("/", 1)[-1] or None

    async def write(
        self, reference: Reference, value: str, expected_version: str | None = None
    ) -> str | None:
        """Add a new version; `latest` then resolves to it."""
        parent = version_name(reference.path).split("/versions/")[0]
        return await self._runner.run(self._add, parent, value)

    async def aclose(self) -> None:
        self._runner.close()


def create_provider(settings: SecretsConfig) -> GcpSecretManagerProvider:
    quiet_sdk_loggers("google", "urllib3")
    return GcpSecretManagerProvider(
        settings.secrets_fetch_timeout_seconds, os.environ.get(ENDPOINT_VARIABLE) or None
    )
