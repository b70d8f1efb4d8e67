"""Local development secret files: `python -m app secrets init` and `make up`.

This module uses ONLY the Python standard library and also runs as a plain script,
`python3 app/secrets/devfiles.py --dir secrets`, because `make up` calls it with the system
Python before anything is installed (docker compose then mounts the files as secrets).

It creates the MISSING files among `jwt_keys`, `database_password` and `redis_password` with strong
random values (files 0600, a new directory 0700) and never overwrites one that exists: a file you
edited, or one the running stack already uses, is kept. It prints which files it created or kept,
never their contents.
"""

import sys

if __name__ == "__main__":  # pragma: no cover - script mode
    # Run as a script, this file's directory (app/secrets) heads sys.path; drop it so a sibling
    # module can never shadow a standard-library one.
    del sys.path[0]

import argparse
import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

DEFAULT_DIR = "secrets"

#: Bytes of randomness in a generated HS256 key (the SPEC's production minimum is 32).
HMAC_KEY_BYTES = 64


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def oct_thumbprint(k: str) -> str:
    """RFC 7638 JWK thumbprint of a symmetric key: SHA-256 over the required members, sorted,
    without whitespace, base64url-encoded."""
    canonical = json.dumps({"k": k, "kty": "oct"}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def new_jwt_keys() -> str:
    """A JWK Set with one fresh HS256 key, as `JWT_KEYS` expects it."""
    k = b64url(secrets.token_bytes(HMAC_KEY_BYTES))
    key = {"kty": "oct", "kid": oct_thumbprint(k), "alg": "HS256", "k": k, "iat": int(time.time())}
    return json.dumps({"keys": [key]}, indent=2)


def new_password() -> str:
    """URL-safe, so it works unquoted in DSNs, compose files and shells."""
    return secrets.token_urlsafe(32)


GENERATORS: dict[str, Callable[[], str]] = {
    "jwt_keys": new_jwt_keys,
    "database_password": new_password,
    "redis_password": new_password,
}


def _write_new(path: Path, value: str) -> bool:
    """Create `path` (0600) holding `value`; False when it already exists. Race-free: O_EXCL."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return True


def init_secrets(directory: Path) -> dict[str, bool]:
    """Create every missing dev secret file in `directory`; name -> True if created now."""
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)  # mkdir's mode is filtered by the umask
    results: dict[str, bool] = {}
    for name, generate in GENERATORS.items():
        path = directory / name
        results[name] = False if os.path.lexists(path) else _write_new(path, generate())
    return results


def report(directory: Path, results: dict[str, bool], out: TextIO) -> None:
    for name, created in results.items():
        verb = "created" if created else "kept   "
        note = "" if created else " (already exists, not overwritten)"
        print(f"{verb} {directory / name}{note}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devfiles.py", description="create missing local development secret files"
    )
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"directory (default: ./{DEFAULT_DIR})")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    try:
        results = init_secrets(directory)
    except OSError as exc:
        print(f"secrets init: cannot write to {directory}: {exc.strerror}", file=sys.stderr)
        return 1
    report(directory, results, sys.stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover - script mode
    sys.exit(main())
