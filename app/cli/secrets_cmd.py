"""`secrets init [--dir DIR]`: create missing local development secret files.

The work is done by `app.secrets.devfiles`, which is standard-library only so that `make up` can
run it as a script before the app is installed; this command is the same function.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.secrets import devfiles
from app.secrets.devfiles import DEFAULT_DIR


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("secrets", help="local development secret files")
    actions = group.add_subparsers(dest="action", required=True, metavar="<action>")
    init = actions.add_parser(
        "init",
        help="create missing dev secret files (jwt_keys, database_password, redis_password) "
        "with strong random values; never overwrites",
    )
    init.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        type=Path,
        help=f"directory to fill (default: ./{DEFAULT_DIR})",
    )
    init.set_defaults(handler=init_command)


def init_command(args: argparse.Namespace) -> int:
    return devfiles.main(["--dir", str(args.dir)])
