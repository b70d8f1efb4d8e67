"""AWS KMS: `aws-kms://<key-id | key ARN | alias/name | alias ARN>`, `Encrypt`/`Decrypt`.

The client is the Secrets Manager provider's (`new_client`: standard credential chain, region from
`AWS_REGION`, endpoint from `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`). Every wrap carries the
encryption context `{"purpose": PURPOSE}` (visible in CloudTrail; required again to unwrap) and
`Decrypt` names the key, so a blob from another key or purpose is refused. The application's
role needs `kms:Decrypt` on the key; the rotation job's needs `kms:Encrypt`.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from app.keys.kms import PURPOSE
from app.secrets.errors import (
    SecretAccessDenied,
    SecretFetchError,
    SecretNotFound,
    SecretUnreachable,
)
from app.secrets.providers import aws as provider
from app.secrets.providers._logging import quiet_sdk_loggers

_CONTEXT = {"purpose": PURPOSE}
_UNUSABLE_KEY_CODES = frozenset({"DisabledException", "KMSInvalidStateException"})
_WRONG_BLOB_CODES = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"}
)
_UNAVAILABLE_CODES = frozenset(
    {"KeyUnavailableException", "DependencyTimeoutException", "KMSInternalException"}
)


def translate(exc: Exception) -> SecretFetchError:
    """KMS wording for KMS codes; credentials, region and SDK errors as the provider says them.
    Only codes and exception types are kept, never a message."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "NotFoundException":
            return SecretNotFound(f"AWS KMS has no such key ({code})")
        if code in _UNUSABLE_KEY_CODES:
            return SecretFetchError(f"the AWS KMS key is disabled or pending deletion ({code})")
        if code in _WRONG_BLOB_CODES:
            return SecretFetchError(
                f"AWS KMS could not unwrap the data key: it was not wrapped by this key "
                f"for this purpose ({code})"
            )
        if code in _UNAVAILABLE_CODES or status >= 500:
            return SecretUnreachable(f"AWS KMS is unavailable ({code})")
        if code in provider._DENIED_CODES or status in {401, 403}:
            return SecretAccessDenied(
                f"AWS KMS refused the request ({code}); the role needs kms:Decrypt "
                "(kms:Encrypt to wrap) on this key"
            )
        return SecretFetchError(f"AWS KMS error {code}")
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return SecretUnreachable(f"cannot reach AWS KMS ({type(exc).__name__})")
    return provider.translate(exc)


class AwsKmsWrapper:
    def __init__(self, key_id: str, timeout: float) -> None:
        self._key_id = key_id
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                config = provider.client_config(self._timeout)
                self._client = provider.new_client("kms", config)
            return self._client

    def wrap(self, plaintext: bytes) -> bytes:
        try:
            response = self._get_client().encrypt(
                KeyId=self._key_id, Plaintext=plaintext, EncryptionContext=_CONTEXT
            )
        except Exception as exc:
            raise translate(exc) from None
        return bytes(response["CiphertextBlob"])

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            response = self._get_client().decrypt(
                KeyId=self._key_id, CiphertextBlob=wrapped, EncryptionContext=_CONTEXT
            )
        except Exception as exc:
            raise translate(exc) from None
        return bytes(response["Plaintext"])

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def create_wrapper(path: str, timeout: float) -> AwsKmsWrapper:
    if not path or "?" in path or "#" in path:
        raise SecretFetchError("expected aws-kms://<key-id, key ARN, alias/<name> or alias ARN>")
    quiet_sdk_loggers("botocore", "boto3", "urllib3")
    return AwsKmsWrapper(path, timeout)
