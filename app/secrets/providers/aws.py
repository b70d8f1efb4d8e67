"""AWS Secrets Manager: `aws-sm://<secret-id or ARN>[?stage=S|?version-id=V][#json-key]`.

boto3 is synchronous, so every call runs in this provider's thread pool. Region, credentials and
endpoint come from the standard AWS chain and variables (`AWS_REGION`, `AWS_PROFILE`, IRSA/ECS/IMDS
roles, `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`), so nothing AWS-specific is added
to our own settings. The version reported is the `VersionId` of the stage read (default
`AWSCURRENT`), which `config check` shows.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

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

OPTIONS = frozenset({"stage", "version-id"})

_DENIED_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "SignatureDoesNotMatch",
        "DecryptionFailure",
        "KMSAccessDeniedException",
        "MissingAuthenticationToken",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "InternalServiceError",
        "ServiceUnavailable",
        "ThrottlingException",
        "RequestTimeout",
    }
)


def translate(exc: Exception) -> SecretFetchError:
    """SDK exception -> one of our errors. Only the error CODE is kept: AWS messages can quote
    request data (ARNs, principal names), never secret values, but we keep output predictable."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "ResourceNotFoundException":
            return SecretNotFound(f"AWS Secrets Manager has no such secret or version ({code})")
        if code in _DENIED_CODES or status in {401, 403}:
            return SecretAccessDenied(
                f"AWS Secrets Manager refused the read ({code}); the "
                "role needs secretsmanager:GetSecretValue on this secret"
            )
        if code in _UNAVAILABLE_CODES or status >= 500:
            return SecretUnreachable(f"AWS Secrets Manager is unavailable ({code})")
        return SecretFetchError(f"AWS Secrets Manager error {code}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return SecretAccessDenied(
            "no AWS credentials found (env, profile, web identity or instance role)"
        )
    if isinstance(exc, NoRegionError):
        return SecretFetchError("no AWS region configured: set AWS_REGION")
    if isinstance(
        exc,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return SecretUnreachable(f"cannot reach AWS Secrets Manager ({type(exc).__name__})")
    if isinstance(exc, BotoCoreError):
        return SecretFetchError(f"AWS SDK error ({type(exc).__name__})")
    return SecretFetchError(f"unexpected error ({type(exc).__name__})")


def new_client(service: str, config: Config | None = None) -> Any:
    """A boto3 client on the standard credential chain, in the configured region."""
    session = boto3.session.Session()
    # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what ECS/Lambda/IRSA set.
    region = session.region_name or os.environ.get("AWS_REGION") or None
    return session.client(service, region_name=region, config=config)


def client_config(timeout: float) -> Config:
    """botocore settings for every client of ours: bounded connect and read, two attempts."""
    return Config(
        connect_timeout=min(5.0, timeout / 2),
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        user_agent_extra="fastapi-secrets-template",
    )


class AwsSecretsManagerProvider:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._runner = BlockingRunner("aws-sm")
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        # Built on first use, in a worker thread: loading botocore's service model takes ~100 ms.
        with self._lock:
            if self._client is None:
                config = client_config(self._timeout)
                self._client = new_client("secretsmanager", config)
            return self._client

    def _get(self, secret_id: str, options: dict[str, str]) -> Fetched:
        kwargs: dict[str, str] = {"SecretId": secret_id}
        if "version-id" in options:
            kwargs["VersionId"] = options["version-id"]
        else:
            kwargs["VersionStage"] = options.get("stage") or "AWSCURRENT"
        try:
            response = self._get_client().get_secret_value(**kwargs)
        except Exception as exc:
            raise translate(exc) from None
        if "SecretString" in response:
            value = response["SecretString"]
        else:
            try:
                value = bytes(response["SecretBinary"]).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                raise SecretFetchError("the secret is binary, not UTF-8 text") from None
        return Fetched(value, version=response.get("VersionId"))

    async def fetch(self, reference: Reference) -> Fetched:
        secret_id, options = split_options(reference.path, OPTIONS)
        return await self._runner.run(self._get, secret_id, options)

    # ---- writing (keys rotate --ref), needs secretsmanager:PutSecretValue -------------------

    def _put(self, secret_id: str, value: str) -> str | None:
        try:
            response = self._get_client().put_secret_value(SecretId=secret_id, SecretString=value)
        except Exception as exc:
            raise translate(exc) from None
        version: str | None = response.get("VersionId")
        return version

    async def write(
        self, reference: Reference, value: str, expected_version: str | None = None
    ) -> str | None:
        """Store `value` as the new AWSCURRENT version (the old one becomes AWSPREVIOUS)."""
        secret_id, _ = split_options(reference.path, OPTIONS)
        return await self._runner.run(self._put, secret_id, value)

    async def aclose(self) -> None:
        self._runner.close()


def create_provider(settings: SecretsConfig) -> AwsSecretsManagerProvider:
    quiet_sdk_loggers("botocore", "boto3", "urllib3")
    return AwsSecretsManagerProvider(settings.secrets_fetch_timeout_seconds)
