"""`data reencrypt [--batch-size N]`: re-encrypt every value sealed under an older data key with
the key that encrypts now (SPEC section 5), the middle step of a `DATA_KEYS` rotation:

    python -m app keys rotate --file F --alg A256GCM   # new key; the service picks it up
    python -m app data reencrypt                       # this: old values move to the new key
    python -m app keys retire --file F --keep-seconds 0   # drop the old key (checked unused)

It reads `DATA_KEYS` and the database credentials exactly as the service does (least privilege:
no other secret), refuses a generated throwaway ring, and then works in batches with a progress
bar on stderr. It is idempotent and resumable (only values whose kid is not the current one are
selected: stop it, run it again, it finishes the rest) and safe while the service runs (each
value is rewritten with a compare-and-set on its old ciphertext; see `app.security.sealed`).
Output names columns, kids and counts, never a value.

Exit status: 0 every old value re-encrypted (or none to do), 1 configuration or database
problem, or values that could not be opened (their kid is no longer in the ring).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from app.cli.common import load_settings, report
from app.config import DATA_KEYS, SECRETS, Settings
from app.db import DATABASE_SECRETS, create_engine, create_sessionmaker
from app.keys.data import DataKeyRing
from app.secrets import ConfigError, SecretStore
from app.security import sealed

DONE, FAILED = 0, 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("data", help="manage the secrets kept in the database")
    actions = group.add_subparsers(dest="action", required=True, metavar="<action>")
    reencrypt = actions.add_parser(
        "reencrypt",
        help="re-encrypt values sealed under older DATA_KEYS keys with the current one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reencrypt.add_argument(
        "--batch-size",
        type=int,
        default=sealed.DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"values per transaction (default {sealed.DEFAULT_BATCH_SIZE})",
    )
    reencrypt.set_defaults(handler=reencrypt_command)


def _fail(message: str) -> int:
    print(f"data: {message}", file=sys.stderr)
    return FAILED


def reencrypt_command(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1")
    try:
        settings = load_settings()
        return asyncio.run(_reencrypt(settings, args.batch_size))
    except ConfigError as exc:
        return report(exc)
    except (OSError, SQLAlchemyError, TimeoutError) as exc:
        return _fail(f"database unavailable ({type(exc).__name__})")


async def _reencrypt(settings: Settings, batch_size: int) -> int:
    store = await SecretStore.open(settings, SECRETS, only={DATA_KEYS.name, *DATABASE_SECRETS})
    engine = create_engine(settings, store)
    try:
        entry = store.entry(DATA_KEYS.name)
        ring: DataKeyRing | None = store.parsed(DATA_KEYS)
        if entry is None or ring is None or entry.source == "generated":
            return _fail(
                "DATA_KEYS is not configured (a ring generated for this run cannot open stored "
                "values): give it as the service has it"
            )
        current = ring.encrypting_key()
        if current is None:
            return _fail("DATA_KEYS holds no key that may encrypt now (every nbf is in the future)")
        async with engine.connect() as connection:
            counts = await sealed.count_by_kid(connection)
        todo = sum(n for kid, n in sealed.totals(counts).items() if kid != current.kid)
        print(
            f"current key {current.kid}; {todo} value(s) under older keys in "
            f"{', '.join(counts) or 'no encrypted column'}",
            file=sys.stderr,
        )
        console = Console(stderr=True)
        with Progress(
            TextColumn("re-encrypting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=not console.is_terminal,
        ) as bar:
            task = bar.add_task("re-encrypting", total=todo)
            done = await sealed.reencrypt(
                create_sessionmaker(engine),
                ring,
                batch_size=batch_size,
                advance=lambda n: bar.advance(task, n),
            )
    finally:
        await engine.dispose()
        await store.aclose()
    print(
        f"re-encrypted {done.rewritten} value(s) under {current.kid}; "
        f"{done.changed_meanwhile} changed meanwhile (already rewritten by the service)"
    )
    if done.unreadable:
        where = ", ".join(f"{column}: {n}" for column, n in sorted(done.unreadable.items()))
        return _fail(
            f"{sum(done.unreadable.values())} value(s) could not be opened ({where}): their key "
            "is not in DATA_KEYS (retired too early?) or they were altered; they were left as is"
        )
    return DONE
