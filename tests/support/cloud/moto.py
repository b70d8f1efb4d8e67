"""A real `moto_server` process on 127.0.0.1 with IAM enforcement, and admin/reader identities.

IAM enforcement (`INITIAL_NO_AUTH_ACTION_COUNT`) makes moto check every request's signature and
the caller's IAM policies, so "access denied" is tested with a genuinely under-privileged role.
The first few actions are free: they create the admin user that creates everything else.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.support.server import free_port, stop, wait_until_answering

REGION = "eu-west-1"
FREE_ACTIONS = 3  # create_user, put_user_policy, create_access_key for the admin


@dataclass
class MotoServer:
    url: str
    admin: dict[str, str]  # aws_access_key_id / aws_secret_access_key

    def client(self, service: str, keys: dict[str, str] | None = None) -> Any:
        return boto3.session.Session(region_name=REGION, **(keys or self.admin)).client(
            service, endpoint_url=self.url
        )

    def user_allowed(self, *actions: str) -> dict[str, str]:
        """Keys of a new user allowed exactly `actions`. moto enforces IAM actions but not the
        Resource element yet, so the docs' ARN scoping cannot be tested here: actions can."""
        iam = self.client("iam")
        name = f"app-{secrets.token_hex(4)}"
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="app",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

    def env(self, keys: dict[str, str]) -> dict[str, str]:
        """Standard AWS variables pointing the SDK at this server with `keys`."""
        return {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.url,
            "AWS_ENDPOINT_URL_KMS": self.url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
        }


@contextmanager
def moto_server(log_dir: Path) -> Iterator[MotoServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(FREE_ACTIONS)
    log_path = log_dir / "moto.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_answering(process, f"{url}/moto-api/", log_path, status=None)
        bootstrap = {
            "aws_access_key_id": "AKIA" + secrets.token_hex(8).upper(),
            "aws_secret_access_key": secrets.token_urlsafe(30),
        }
        iam = boto3.session.Session(region_name=REGION, **bootstrap).client("iam", endpoint_url=url)
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        yield MotoServer(url, admin)
    finally:
        stop(process, timeout=10)
        log.close()
