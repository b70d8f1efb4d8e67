"""`keys generate | rotate | retire`: manage a JWT key-ring file (a JWK Set, SPEC section 4).

`rotate` and `retire` rewrite the file atomically (temp file in the same directory, fsync,
rename), keeping its permissions, so a server polling the file sees the old ring or the new one,
never half of one. Messages name kids and paths, never key material.

The default algorithm is EdDSA (Ed25519): small keys, fast signing and verification, no
parameter choices to get wrong, and the public half can be published in the JWKS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.security.keyring import ALGORITHMS, KeyRing, KeyRingError, b64url, jwk_thumbprint

DEFAULT_ALG = "EdDSA"
_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_RSA_BITS = 3072


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="generate, rotate and retire JWT signing keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="<action>")
    algs = list(ALGORITHMS)

    generate = actions.add_parser("generate", help="print a new private JWK")
    generate.add_argument("--alg", choices=algs, default=DEFAULT_ALG)
    generate.set_defaults(handler=generate_command)

    rotate = actions.add_parser(
        "rotate",
        help="add a new key to a key-ring file (atomic) "
        "or to a ring in a cloud secret manager (--ref)",
    )
    target = rotate.add_mutually_exclusive_group(required=True)
    target.add_argument("--file", type=Path)
    target.add_argument(
        "--ref",
        metavar="REFERENCE",
        help="aws-sm://, gcp-sm://, azure-kv:// or vault:// reference: writes a "
        "new version (see docs/secrets-providers.md)",
    )
    rotate.add_argument("--alg", choices=algs, default=DEFAULT_ALG)
    rotate.add_argument(
        "--activate-in",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the new key verifies at once and signs from now + SECONDS",
    )
    rotate.set_defaults(handler=rotate_command)

    retire = actions.add_parser("retire", help="drop keys that stopped signing > N s ago")
    retire.add_argument("--file", required=True, type=Path)
    retire.add_argument("--keep-seconds", required=True, type=float, metavar="N")
    retire.set_defaults(handler=retire_command)


def new_jwk(alg: str, now: float | None = None, activate_in: float = 0.0) -> dict[str, Any]:
    """A new private JWK with `kid` (RFC 7638 thumbprint), `alg`, `use`, `iat` and `nbf`."""
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    document: dict[str, Any]
    if alg in _HMAC_BYTES:
        document = {"kty": "oct", "k": b64url(secrets.token_bytes(_HMAC_BYTES[alg]))}
    elif alg == "EdDSA":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        document = OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate(), as_dict=True)
    elif alg == "ES256":
        from cryptography.hazmat.primitives.asymmetric import ec

        document = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    elif alg == "RS256":
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        document = RSAAlgorithm.to_jwk(private, as_dict=True)
    else:
        raise KeyRingError(f"unsupported alg {alg}")
    created = int(time.time() if now is None else now)
    document.update(
        {
            "kid": jwk_thumbprint(document),
            "alg": alg,
            "use": "sig",
            "iat": created,
            "nbf": created + max(round(activate_in), 0),
        }
    )
    return document


def added_message(new: dict[str, Any], count: int, where: object) -> str:
    """What `keys rotate` prints (kid, alg and start, never key material)."""
    return (
        f"added key {new['kid']} ({new['alg']}), signing from nbf={new['nbf']}; "
        f"{count} key(s) in {where}"
    )


def generate_command(args: argparse.Namespace) -> int:
    print(json.dumps(new_jwk(args.alg), indent=2))
    return 0


def _fail(message: str) -> int:
    print(f"keys: {message}", file=sys.stderr)
    return 1


def read_ring_documents(path: Path) -> list[dict[str, Any]]:
    """The ring file as a list of JWK dicts (raw HMAC secrets are converted, same kids)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyRingError(f"cannot read {path} ({type(exc).__name__})") from None
    return KeyRing.documents(text)


def write_ring_atomically(path: Path, keys: list[dict[str, Any]]) -> None:
    """Validate, then temp file + fsync + rename, keeping the file's mode (0600 if new)."""
    text = json.dumps({"keys": keys}, indent=2) + "\n"
    KeyRing.parse(text)
    try:
        mode = path.stat().st_mode & 0o7777
        owner: tuple[int, int] | None = (path.stat().st_uid, path.stat().st_gid)
    except FileNotFoundError:
        mode, owner = 0o600, None
    directory = path.resolve().parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, *owner)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path.resolve())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def rotate_command(args: argparse.Namespace) -> int:
    if args.ref is not None:
        from app.cli.keys_ref import rotate_ref_command

        return rotate_ref_command(args)
    try:
        keys = read_ring_documents(args.file) if args.file.exists() else []
        new = new_jwk(args.alg, activate_in=args.activate_in)
        write_ring_atomically(args.file, [new, *keys])
    except KeyRingError as exc:
        return _fail(f"{args.file}: {exc}")
    except OSError as exc:
        return _fail(f"cannot write {args.file} ({type(exc).__name__})")
    print(added_message(new, len(keys) + 1, args.file))
    return 0


def stopped_signing(ring: KeyRing) -> dict[str, float | None]:
    """For each kid: when it stopped signing (a newer key's start passed), None if it has not
    or the moment is unknown. Only known start times count: retiring late is always safe."""
    now = time.time()
    result: dict[str, float | None] = {}
    ordered = sorted(
        ring.keys,
        key=lambda k: (k.starts if k.starts is not None else float("-inf"), -k.position),
        reverse=True,
    )
    for index, key in enumerate(ordered):
        starts = [
            newer.starts for newer in ordered[:index] if newer.can_sign and newer.starts is not None
        ]
        earliest = min(starts) if starts else None
        result[key.kid] = earliest if earliest is not None and earliest <= now else None
    return result


def retire_command(args: argparse.Namespace) -> int:
    try:
        keys = read_ring_documents(args.file)
        ring = KeyRing.parse(json.dumps({"keys": keys}))
    except KeyRingError as exc:
        return _fail(f"{args.file}: {exc}")
    signing = ring.signing_key()
    cutoff = time.time() - args.keep_seconds
    stops = stopped_signing(ring)
    retired = [
        kid
        for kid, stopped in stops.items()
        if stopped is not None and stopped <= cutoff and (signing is None or kid != signing.kid)
    ]
    if not retired:
        print(f"nothing to retire in {args.file}")
        return 0
    kept = [
        document for document, key in zip(keys, ring.keys, strict=True) if key.kid not in retired
    ]
    try:
        write_ring_atomically(args.file, kept)
    except (KeyRingError, OSError) as exc:
        return _fail(f"cannot write {args.file} ({type(exc).__name__})")
    print(f"retired {len(retired)} key(s): {', '.join(retired)}; {len(kept)} left")
    return 0
