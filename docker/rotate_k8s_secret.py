"""Rotate the JWT key ring in a Kubernetes Secret: GET -> `keys rotate` -> `keys retire` -> UPDATE.

Runs in the app image as the `app-jwt-rotate` CronJob (k8s/components/jwt-rotation) under a
ServiceAccount allowed only `get` and `update` on that one Secret. The ring passes through a
0600 file in a private temporary directory (the pod's in-memory /tmp) because `python -m app keys
rotate` works on files; it is removed before exit and never printed. The update carries the
`resourceVersion` that was read, so a concurrent change makes the API answer 409 and the Job
retries from a fresh read instead of overwriting it.

Standard library only. Talks to the API server named by KUBERNETES_SERVICE_HOST/PORT (or
--api-server), verifying TLS with the ServiceAccount's CA bundle.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class RotationError(Exception):
    """A step failed; the message names the step, never a secret value."""


def _default_api_server() -> str:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"https://{host}:{port}"


class SecretClient:
    """The two calls the Role allows: GET and PUT (update) of one named Secret."""

    def __init__(self, api_server: str, sa_dir: Path, namespace: str | None, name: str) -> None:
        if not api_server.startswith("https://"):
            raise RotationError("--api-server must be an https:// URL")
        self._token = (sa_dir / "token").read_text(encoding="utf-8").strip()
        self._context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
        ns = namespace or (sa_dir / "namespace").read_text(encoding="utf-8").strip()
        self.label = f"{ns}/{name}"
        self._url = f"{api_server.rstrip('/')}/api/v1/namespaces/{ns}/secrets/{name}"

    def _call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self._url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=30) as response:  # noqa: S310
                result: dict[str, Any] = json.load(response)
                return result
        except urllib.error.HTTPError as exc:
            hint = " (changed concurrently; retry)" if exc.code == 409 else ""
            raise RotationError(f"{method} secret {self.label}: HTTP {exc.code}{hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise RotationError(f"{method} secret {self.label}: {exc}") from None

    def get(self) -> dict[str, Any]:
        return self._call("GET")

    def update(self, secret: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", secret)


def _app(*args: str) -> None:
    completed = subprocess.run([sys.executable, "-m", "app", *args], check=False)
    if completed.returncode != 0:
        raise RotationError(f"`python -m app {args[0]} {args[1]}` exited {completed.returncode}")


def rotate(client: SecretClient, key: str, app_args: list[str], keep_seconds: int | None) -> None:
    secret = client.get()
    encoded = (secret.get("data") or {}).get(key)
    if not encoded:
        raise RotationError(f"secret {client.label} has no key {key!r}")
    with tempfile.TemporaryDirectory(prefix="jwt-rotate-") as workdir:
        ring = Path(workdir) / key
        ring.touch(mode=0o600)
        ring.write_bytes(base64.b64decode(encoded))
        _app("keys", "rotate", "--file", str(ring), *app_args)
        if keep_seconds is not None:
            _app("keys", "retire", "--file", str(ring), "--keep-seconds", str(keep_seconds))
        updated = base64.b64encode(ring.read_bytes()).decode("ascii")
    # `secret` still carries metadata.resourceVersion from the GET: optimistic concurrency.
    secret["data"][key] = updated
    client.update(secret)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True, help="Secret name (e.g. app-jwt-keys)")
    parser.add_argument("--key", default="jwt_keys", help="data key holding the ring")
    parser.add_argument("--namespace", help="default: the ServiceAccount's namespace")
    parser.add_argument("--alg", help="passed to `keys rotate --alg`")
    parser.add_argument("--activate-in", type=int, help="passed to `keys rotate --activate-in`")
    parser.add_argument("--keep-seconds", type=int, help="then `keys retire --keep-seconds N`")
    parser.add_argument("--api-server", default=_default_api_server())
    parser.add_argument("--service-account-dir", type=Path, default=SERVICE_ACCOUNT_DIR)
    args = parser.parse_args(argv)

    app_args: list[str] = []
    if args.alg:
        app_args += ["--alg", args.alg]
    if args.activate_in is not None:
        app_args += ["--activate-in", str(args.activate_in)]
    try:
        sa_dir = args.service_account_dir
        client = SecretClient(args.api_server, sa_dir, args.namespace, args.secret)
        rotate(client, args.key, app_args, args.keep_seconds)
    except (RotationError, OSError) as exc:
        print(f"rotate_k8s_secret: {exc}", file=sys.stderr)
        return 1
    print(f"rotate_k8s_secret: rotated the key ring in secret {client.label} ({args.key})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
