"""`keys generate | rotate | retire`: manage a JWT key-ring file (a JWK Set, SPEC section 4), or
with `--alg A256GCM` a `DATA_KEYS` ring (SPEC section 7; `app.cli.keys_data` says what differs).

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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.cli import keys_data
from app.cli.keys_ref import added_message, rotate_ref_command
from app.keys.data import ALG as DATA_ALG
from app.keys.data import DataKeyError, new_data_jwk
from app.keys.signing import ALGORITHMS, KeyRing, KeyRingError, new_jwk

DEFAULT_ALG = "EdDSA"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys", help="generate, rotate and retire JWT signing keys (or A256GCM data keys)"
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="<action>")
    algs = [*ALGORITHMS, DATA_ALG]

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
        help="the new key verifies at once and signs (or encrypts) from now + SECONDS",
    )
    rotate.add_argument(
        "--kms",
        metavar="REFERENCE",
        help=f"with --alg {DATA_ALG} and a new file: start the envelope form, wrapping the keys "
        "with this KMS key (aws-kms://, gcp-kms://, azure-kv-key://, vault-transit://)",
    )
    rotate.set_defaults(handler=rotate_command)

    retire = actions.add_parser(
        "retire",
        help="drop keys that stopped signing > N s ago (data keys: only once no value uses them)",
    )
    retire.add_argument("--file", required=True, type=Path)
    retire.add_argument("--keep-seconds", required=True, type=float, metavar="N")
    retire.set_defaults(handler=retire_command)


def generate_command(args: argparse.Namespace) -> int:
    document = new_data_jwk() if args.alg == DATA_ALG else new_jwk(args.alg)
    print(json.dumps(document, indent=2))
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
    """Validate, then write (`write_text_atomically`)."""
    text = json.dumps({"keys": keys}, indent=2) + "\n"
    KeyRing.parse(text)
    write_text_atomically(path, text)


def write_text_atomically(path: Path, text: str) -> None:
    """Temp file + fsync + rename. The result is 0600 whatever the old mode was (SPEC section
    5: a key ring is readable by its owner only); the owner is kept."""
    try:
        owner: tuple[int, int] | None = (path.stat().st_uid, path.stat().st_gid)
    except FileNotFoundError:
        owner = None
    mode = 0o600
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
    if args.kms is not None and args.alg != DATA_ALG:
        return _fail(f"--kms wraps data keys: use it with --alg {DATA_ALG}")
    if args.ref is not None:
        return rotate_ref_command(args)
    if args.alg == DATA_ALG:
        return keys_data.rotate_command(args, write_text_atomically)
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
        document = keys_data.read_document(args.file)
    except DataKeyError:
        document = None  # not JSON: raw HMAC secrets, a JWT ring
    if keys_data.is_data_document(document):
        assert document is not None
        return keys_data.retire_command(args, document, write_text_atomically)
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
