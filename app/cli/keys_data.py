"""`keys rotate|retire --alg A256GCM`: the same commands for a `DATA_KEYS` ring (SPEC section 7).

A data ring differs from the JWT ring in two ways that matter here:
- It may be in envelope form (`{"kms": "<scheme>://<key>", "keys": [...wrapped_k...]}`): `rotate`
  then wraps the new key with the document's KMS key (`--kms REF` starts the envelope form on a
  new file), so the file never holds a key in clear. Only `kms:Encrypt` (or the scheme's wrap
  permission) is needed: the rotation identity never reads the keys back. The envelope is
  checked without unwrapping (structure, kids, times), for the same reason.
- A retired JWT key only makes old tokens fail, which expire anyway; a retired DATA key makes
  every value it sealed unreadable forever. So `retire` first counts the values per kid in the
  database (the service's own `DATABASE_*` settings) and refuses to drop a key that still seals
  any: run `python -m app data reencrypt` first.
Messages name kids, paths and counts, never key material.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.cli.common import load_settings, report
from app.config import SECRETS
from app.db import DATABASE_SECRETS, create_engine
from app.keys.data import ALG, DataKey, DataKeyError, DataKeyRing, new_data_jwk, wrap_jwk
from app.keys.kms import KmsKeys
from app.secrets import ConfigError, SecretStore
from app.secrets.errors import SecretFetchError
from app.secrets.references import MissingExtraError
from app.security import sealed


def is_data_document(document: Any) -> bool:
    """A data-key ring: envelope form, or JWKs with alg A256GCM."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return False
    if "kms" in document:
        return True
    keys = document["keys"]
    return bool(keys) and all(isinstance(k, dict) and k.get("alg") == ALG for k in keys)


def _parse_document(text: str, where: object) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError:
        raise DataKeyError(f"{where} is not a JSON key ring") from None
    if isinstance(document, dict) and "keys" not in document and "kty" in document:
        document = {"keys": [document]}
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise DataKeyError(f'{where} is not a JSON key ring (an object with a "keys" list)')
    return document


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataKeyError(f"cannot read {path} ({type(exc).__name__})") from None
    return _parse_document(text, path)


def structure(document: dict[str, Any]) -> DataKeyRing:
    """The ring's kids and times WITHOUT unwrapping an envelope (no KMS call, no decrypt
    permission needed): each wrapped key stands in for its own material."""
    if document.get("kms") is not None:
        for position, key in enumerate(document.get("keys", [])):
            if isinstance(key, dict) and "kid" not in key:
                raise DataKeyError(f"key {position + 1}: envelope keys must carry a kid")

    def stand_in(reference: str, wrapped: bytes) -> bytes:
        return hashlib.sha256(wrapped).digest()

    return DataKeyRing.parse(json.dumps(document), stand_in)


def add_data_key(
    current: str | None, activate_in: float, kms_reference: str | None
) -> tuple[str, dict[str, Any], int, str | None]:
    """`current` (a ring's text, or None) with a new A256GCM key in front, wrapped when the ring
    is an envelope: (new text, the new JWK, keys in the ring, the KMS reference)."""
    if current is not None and current.strip():
        document = _parse_document(current, "the ring")
        if document.get("keys") and not is_data_document(document):
            raise DataKeyError("it holds JWT signing keys, not A256GCM data keys")
    else:
        document = {"keys": []}
    kms = document.get("kms")
    if kms_reference is not None:
        if kms is not None and kms != kms_reference:
            raise DataKeyError(
                f"the ring is wrapped by {kms}; its keys cannot move to another KMS key here"
            )
        if kms is None and document["keys"]:
            raise DataKeyError("--kms starts the envelope form: give it a new ring")
        kms = kms_reference
    new = new_data_jwk(activate_in=activate_in)
    entry = new
    if kms is not None:
        with KmsKeys() as wrapper:
            entry = wrap_jwk(new, kms, wrapper.wrap)
    updated: dict[str, Any] = {"keys": [entry, *document["keys"]]}
    if kms is not None:
        updated = {"kms": kms, **updated}
    structure(updated)  # refuse to write what the service could not parse
    return json.dumps(updated, indent=2) + "\n", new, len(updated["keys"]), kms


def added_message(new: dict[str, Any], count: int, kms: str | None, where: object) -> str:
    wrapped = f", wrapped by {kms.partition('://')[0]}" if kms is not None else ""
    return (
        f"added data key {new['kid']} ({ALG}{wrapped}), encrypting from nbf={new['nbf']}; "
        f"{count} key(s) in {where}"
    )


def rotate_data_file(
    path: Path, activate_in: float, kms_reference: str | None, write: Callable[[Path, str], None]
) -> str:
    """Add a new key to the ring file (atomic `write`); the message to print."""
    current = path.read_text(encoding="utf-8") if path.exists() else None
    text, new, count, kms = add_data_key(current, activate_in, kms_reference)
    write(path, text)
    return added_message(new, count, kms, path)


def rotate_command(args: argparse.Namespace, write: Callable[[Path, str], None]) -> int:
    try:
        message = rotate_data_file(args.file, args.activate_in, args.kms, write)
    except (DataKeyError, SecretFetchError, MissingExtraError) as exc:
        kind = getattr(exc, "kind", "error")
        return _fail(f"{args.file}: {f'{kind}: ' if kind != 'error' else ''}{exc}")
    except OSError as exc:
        return _fail(f"cannot write {args.file} ({type(exc).__name__})")
    print(message)
    return 0


def stopped_encrypting(ring: DataKeyRing, now: float) -> dict[str, float | None]:
    """For each kid: when a newer key started encrypting (None: it has not, or unknown)."""
    result: dict[str, float | None] = {}
    for key in ring.keys:
        starts = [
            other.starts
            for other in ring.keys
            if other is not key and other.starts is not None and _newer(other, key)
        ]
        earliest = min(starts) if starts else None
        result[key.kid] = earliest if earliest is not None and earliest <= now else None
    return result


def _newer(a: DataKey, b: DataKey) -> bool:
    start_a = a.starts if a.starts is not None else float("-inf")
    start_b = b.starts if b.starts is not None else float("-inf")
    return (start_a, -a.position) > (start_b, -b.position)


async def values_by_kid() -> dict[str, int]:
    settings = load_settings()
    store = await SecretStore.open(settings, SECRETS, only=DATABASE_SECRETS)
    engine = create_engine(settings, store)
    try:
        async with engine.connect() as connection:
            return sealed.totals(await sealed.count_by_kid(connection))
    finally:
        await engine.dispose()
        await store.aclose()


def retire_command(
    args: argparse.Namespace,
    document: dict[str, Any],
    write: Callable[[Path, str], None],
    count: Callable[[], dict[str, int]] | None = None,
) -> int:
    try:
        ring = structure(document)
    except DataKeyError as exc:
        return _fail(f"{args.file}: {exc}")
    now = time.time()
    current = ring.encrypting_key(now)
    cutoff = now - args.keep_seconds
    candidates = [
        kid
        for kid, stopped in stopped_encrypting(ring, now).items()
        if stopped is not None and stopped <= cutoff and (current is None or kid != current.kid)
    ]
    if not candidates:
        print(f"nothing to retire in {args.file}")
        return 0
    try:
        used = (count or (lambda: asyncio.run(values_by_kid())))()
    except ConfigError as exc:
        return report(exc)
    except (OSError, SQLAlchemyError, TimeoutError) as exc:
        return _fail(
            f"cannot count the values each key seals ({type(exc).__name__}); nothing retired"
        )
    busy = {kid: used[kid] for kid in candidates if used.get(kid, 0) > 0}
    if busy:
        listed = ", ".join(f"{kid} ({n} value(s))" for kid, n in sorted(busy.items()))
        return _fail(
            f"refusing to retire keys that still seal values: {listed}; run "
            "`python -m app data reencrypt` first; nothing retired"
        )
    kept = [
        entry
        for entry, key in zip(document["keys"], ring.keys, strict=True)
        if key.kid not in candidates
    ]
    updated = {**document, "keys": kept}
    try:
        structure(updated)
        write(args.file, json.dumps(updated, indent=2) + "\n")
    except (DataKeyError, OSError) as exc:
        return _fail(f"cannot write {args.file} ({type(exc).__name__})")
    print(
        f"retired {len(candidates)} data key(s): {', '.join(candidates)} (no value uses them); "
        f"{len(kept)} left"
    )
    return 0


def _fail(message: str) -> int:
    print(f"keys: {message}", file=sys.stderr)
    return 1
