"""RDS IAM authentication: `DATABASE_PASSWORD=aws-rds-iam://[<user>@<host>:<port>]`.

The "password" is an IAM auth token: a SigV4-presigned `connect` request that boto3 computes
locally (no network call) from the current AWS credentials; RDS accepts it for 15 minutes to
START a connection. It is produced as a leased value (`ttl` 15 min), so the store makes a fresh
one at half-life and every new pool connection gets a token with at least 7 minutes left, while
the request path still never calls AWS. User, host and port default to those in `DATABASE_URL`.
RDS requires TLS for IAM auth: set `DATABASE_SSLMODE=verify-full` and `DATABASE_SSL_CA_FILE`.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.engine import make_url

from app.secrets.errors import SecretFetchError
from app.secrets.provider import Fetched, Reference
from app.secrets.providers._blocking import BlockingRunner
from app.secrets.providers._logging import quiet_sdk_loggers
from app.secrets.providers.aws import new_client, translate
from app.secrets.spec import SecretsConfig

#: RDS accepts an IAM auth token for 15 minutes.
TOKEN_TTL_SECONDS = 900.0


class RdsIamTokenProvider:
    def __init__(self, database_url: str) -> None:
        self._url = make_url(database_url)
        self._runner = BlockingRunner("aws-rds-iam")
        self._client: Any = None
        self._lock = threading.Lock()

    def _target(self, path: str) -> tuple[str, int, str]:
        if path:
            user, at, hostport = path.rpartition("@")
            host, _, port = hostport.partition(":")
            if not at or not user or not host:
                raise SecretFetchError(
                    "expected aws-rds-iam:// or aws-rds-iam://<user>@<host>:<port>"
                )
            return host, int(port or 5432), user
        if not self._url.host or not self._url.username:
            raise SecretFetchError("DATABASE_URL must name the user and host for RDS IAM auth")
        return self._url.host, int(self._url.port or 5432), self._url.username

    def _generate(self, path: str) -> Fetched:
        host, port, user = self._target(path)
        try:
            with self._lock:
                if self._client is None:
                    self._client = new_client("rds")
            token = self._client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
        except SecretFetchError:
            raise
        except Exception as exc:
            raise translate(exc) from None
        return Fetched(str(token), version="iam-token", ttl=TOKEN_TTL_SECONDS)

    async def fetch(self, reference: Reference) -> Fetched:
        return await self._runner.run(self._generate, reference.path)

    async def aclose(self) -> None:
        self._runner.close()


def create_provider(settings: SecretsConfig) -> RdsIamTokenProvider:
    quiet_sdk_loggers("botocore", "boto3", "urllib3")
    return RdsIamTokenProvider(settings.database_url)
