"""`keys rotate --ref <reference>`: add a new key to a key ring kept in a cloud secret manager.

Same ring rules as `keys rotate --file` (new key first, others kept, `--activate-in` delays its
`nbf`), written as a NEW VERSION of the secret through `app.secrets.writers`; services using the
reference pick it up on their next refresh. Run it with the rotation identity, not the service's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from app.cli.common import load_settings, report
from app.cli.keys_data import add_data_key
from app.cli.keys_data import added_message as added_data_message
from app.keys.data import ALG as DATA_ALG
from app.keys.data import DataKeyError
from app.keys.signing import KeyRing, KeyRingError, new_jwk
from app.secrets import ConfigError
from app.secrets.errors import SecretFetchError
from app.secrets.references import MissingExtraError
from app.secrets.writers import Written, update_secret


def ring_documents(text: str | None) -> list[dict[str, Any]]:
    """The ring as JWK dicts (raw HMAC lines become `oct` JWKs with the same kids)."""
    if text is None or not text.strip():
        return []
    return KeyRing.documents(text)


def added_message(new: dict[str, Any], count: int, where: object) -> str:
    """What `keys rotate` prints (kid, alg and start, never key material)."""
    return (
        f"added key {new['kid']} ({new['alg']}), signing from nbf={new['nbf']}; "
        f"{count} key(s) in {where}"
    )


def _update(
    args: argparse.Namespace, add_key: Callable[[str | None], str], *refused: type[Exception]
) -> Written | None:
    """Write a new version of the ring at `args.ref` through `add_key`; None (after saying
    why, one line on stderr, never key material) when it could not."""
    failures: tuple[type[Exception], ...] = (SecretFetchError, MissingExtraError, *refused)
    try:
        settings = load_settings()
        written: Written = asyncio.run(update_secret(settings, args.ref, add_key))
    except ConfigError as exc:
        report(exc)
        return None
    except failures as exc:
        kind = getattr(exc, "kind", "error")
        prefix = f"{kind}: " if kind != "error" else ""
        print(f"keys: {args.ref}: {prefix}{exc}", file=sys.stderr)
        return None
    return written


def _versions(written: Written) -> str:
    return f"(version {written.previous_version or '-'} -> {written.version or '-'})"


def rotate_ref_command(args: argparse.Namespace) -> int:
    if args.alg == DATA_ALG:
        return _rotate_data_ref(args)
    ring: list[dict[str, Any]] = []  # as written, the new key first

    def add_key(current: str | None) -> str:
        ring[:] = [new_jwk(args.alg, activate_in=args.activate_in), *ring_documents(current)]
        text = json.dumps({"keys": ring})
        KeyRing.parse(text)
        return text

    written = _update(args, add_key, KeyRingError)
    if written is None:
        return 1
    print(f"{added_message(ring[0], len(ring), written.reference)} {_versions(written)}")
    return 0


def _rotate_data_ref(args: argparse.Namespace) -> int:
    """`keys rotate --ref R --alg A256GCM`: the same for a DATA_KEYS ring kept in a manager."""
    added: list[Any] = []

    def add_key(current: str | None) -> str:
        text, new, count, kms = add_data_key(current, args.activate_in, args.kms)
        added[:] = [new, count, kms]
        return text

    written = _update(args, add_key, DataKeyError)
    if written is None:
        return 1
    new, count, kms = added
    print(f"{added_data_message(new, count, kms, written.reference)} {_versions(written)}")
    return 0
