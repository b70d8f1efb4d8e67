"""`python -m app <command>`: one module per command group, each with `register(subparsers)`.

Every command resolves configuration the same way the server does and reports problems as one
line per setting, naming where it came from and never the value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import (
    config_cmd,
    data_cmd,
    keys_cmd,
    openapi_cmd,
    secrets_cmd,
    server_cmd,
    users_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for module in (
        server_cmd,
        config_cmd,
        secrets_cmd,
        keys_cmd,
        data_cmd,
        users_cmd,
        openapi_cmd,
    ):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    return code
