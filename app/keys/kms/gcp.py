"""GCP Cloud KMS: `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K`, REST `:encrypt` and
`:decrypt`.

REST through google-auth's `AuthorizedSession` with Application Default Credentials, like the
Secret Manager provider (which also uses REST), so the `[gcp]` extra needs no second client
library. `GCP_KMS_ENDPOINT` overrides the endpoint (regional or private). Every wrap binds
`PURPOSE` as additional authenticated data. `:decrypt` finds the key version from the ciphertext,
so rotating the crypto key keeps old wraps readable. The application's service account needs
`cloudkms.cryptoKeyVersions.useToDecrypt` (roles/cloudkms.cryptoKeyDecrypter), the rotation
job's `useToEncrypt`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.transport.requests import AuthorizedSession

from app.keys.kms import PURPOSE
from app.secrets.errors import (
    SecretAccessDenied,
    SecretFetchError,
    SecretNotFound,
    SecretUnreachable,
)
from app.secrets.providers import gcp as provider
from app.secrets.providers._logging import quiet_sdk_loggers

ENDPOINT_VARIABLE = "GCP_KMS_ENDPOINT"
DEFAULT_ENDPOINT = "https://cloudkms.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloudkms",)

_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:?#]+$")
_AAD = base64.b64encode(PURPOSE.encode()).decode("ascii")


def translate(exc: Exception) -> SecretFetchError:
    """KMS wording for API answers; credential errors as the provider says them."""
    if isinstance(exc, gexc.NotFound):
        return SecretNotFound("GCP KMS has no such crypto key (NOT_FOUND)")
    if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
        return SecretAccessDenied(
            f"GCP KMS refused the request ({type(exc).__name__}); the service account needs "
            "roles/cloudkms.cryptoKeyDecrypter (cryptoKeyEncrypter to wrap) on this key"
        )
    if isinstance(exc, gexc.BadRequest):
        return SecretFetchError(
            "GCP KMS could not unwrap the data key: it was not wrapped by this key for this "
            "purpose (INVALID_ARGUMENT)"
        )
    if isinstance(exc, gexc.FailedPrecondition):
        return SecretFetchError("the GCP KMS key version is disabled or destroyed")
    if isinstance(
        exc,
        gexc.ServiceUnavailable
        | gexc.InternalServerError
        | gexc.TooManyRequests
        | gexc.GatewayTimeout
        | requests.ConnectionError
        | requests.Timeout
        | auth_exc.TransportError,
    ):
        return SecretUnreachable(f"cannot reach GCP KMS ({type(exc).__name__})")
    if isinstance(exc, gexc.GoogleAPICallError):
        return SecretFetchError(f"GCP KMS error ({type(exc).__name__})")
    return provider.translate(exc)


class GcpKmsWrapper:
    def __init__(self, name: str, timeout: float, endpoint: str) -> None:
        self._name = name
        self._timeout = timeout
        self._endpoint = endpoint.rstrip("/")
        self._session: Any = None
        self._lock = threading.Lock()

    def _get_session(self) -> Any:
        with self._lock:
            if self._session is None:
                credentials, _ = google.auth.default(scopes=list(SCOPES))
                self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            return self._session

    def _call(self, verb: str, body: dict[str, str], field: str) -> bytes:
        try:
            response = self._get_session().post(
                f"{self._endpoint}/v1/{self._name}:{verb}", json=body, timeout=self._timeout
            )
            if response.status_code != 200:
                # Builds the typed exception from the status; its text is never shown.
                raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]
            value = response.json().get(field)
        except Exception as exc:
            raise translate(exc) from None
        try:
            decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            raise SecretFetchError(f"GCP KMS returned no {field}")
        return decoded

    def wrap(self, plaintext: bytes) -> bytes:
        body = {
            "plaintext": base64.b64encode(plaintext).decode("ascii"),
            "additionalAuthenticatedData": _AAD,
        }
        return self._call("encrypt", body, "ciphertext")

    def unwrap(self, wrapped: bytes) -> bytes:
        body = {
            "ciphertext": base64.b64encode(wrapped).decode("ascii"),
            "additionalAuthenticatedData": _AAD,
        }
        return self._call("decrypt", body, "plaintext")

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()


def create_wrapper(path: str, timeout: float) -> GcpKmsWrapper:
    if not _NAME.match(path):
        raise SecretFetchError(
            "expected gcp-kms://projects/<project>/locations/<location>/keyRings/<ring>/"
            "cryptoKeys/<key>"
        )
    quiet_sdk_loggers("google", "urllib3")
    endpoint = os.environ.get(ENDPOINT_VARIABLE) or DEFAULT_ENDPOINT
    return GcpKmsWrapper(path, timeout, endpoint)
