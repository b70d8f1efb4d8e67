"""`secrets init [--dir DIR]`: create the missing local development secret files.

One file per declared secret that has a development generator (`app/config.py`, `SECRETS`),
named as `SECRETS_DIR` expects (`jwt_keys`, `database_password`, ...), with a strong random
value, mode 0600 in a 0700 directory. An existing file is never overwritten (a value you edited,
or one the running stack already uses, is kept). It refuses to work in a directory, or next to an
existing file, that another user owns or that others may read: a secret there is already exposed.
It prints which files it created or kept, never their contents.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from app.config import SECRETS
from app.secrets import SecretRegistry

DEFAULT_DIR = "secrets"


class UnsafePlace(Exception):
    """A directory or file whose owner or mode would expose a secret; the message says why."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("secrets", help="local development secret files")
    actions = group.add_subparsers(dest="action", required=True, metavar="<action>")
    names = ", ".join(s.file_name for s in SECRETS if s.generate is not None)
    init = actions.add_parser(
        "init",
        help=f"create missing dev secret files ({names}) with strong random values; "
        "never overwrites",
    )
    init.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        type=Path,
        help=f"directory to fill (default: ./{DEFAULT_DIR})",
    )
    init.set_defaults(handler=init_command)


def _check_private(path: Path, what: str) -> None:
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise UnsafePlace(f"{what} {path} belongs to another user (uid {info.st_uid}); refused")
    if stat.S_IMODE(info.st_mode) & 0o077:
        fix = "chmod 700" if what == "directory" else "chmod 600"
        raise UnsafePlace(
            f"{what} {path} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"refused: run `{fix} {path}` if nobody else could have read it, else rotate it"
        )


def _write_new(path: Path, value: str) -> bool:
    """Create `path` (0600) holding `value`; False when it already exists. Race-free: O_EXCL."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # whatever the umask
        handle.write(value + "\n")
    return True


def init_secrets(directory: Path, registry: SecretRegistry = SECRETS) -> dict[str, bool]:
    """Create every missing dev secret file in `directory`; file name -> created now?"""
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)  # mkdir's mode is filtered by the umask
    _check_private(directory, "directory")
    results: dict[str, bool] = {}
    for spec in registry:
        if spec.generate is None:
            continue
        path = directory / spec.file_name
        if os.path.lexists(path):
            _check_private(path, "file")
            results[spec.file_name] = False
        else:
            results[spec.file_name] = _write_new(path, spec.generate())
    return results


def init_command(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    try:
        results = init_secrets(directory)
    except UnsafePlace as exc:
        print(f"secrets init: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"secrets init: cannot write to {directory}: {exc.strerror}", file=sys.stderr)
        return 1
    for name, created in results.items():
        verb = "created" if created else "kept   "
        note = "" if created else " (already exists, not overwritten)"
        print(f"{verb} {directory / name}{note}")
    return 0
