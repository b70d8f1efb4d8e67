"""`openapi [--output FILE]`: print the OpenAPI document, offline.

Built from `create_app(settings).openapi()`: no database, Redis or secret is touched (the
lifespan never runs), so it works on a build machine and in CI. Client generators read it
(`make client`, docs/clients.md). It is the same document `/openapi.json` serves outside
production, for the routes the current settings enable (`METRICS_ENABLED` adds `/metrics`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.common import load_settings, report
from app.secrets import ConfigError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    openapi = commands.add_parser(
        "openapi", help="print the OpenAPI document (offline: no database, Redis or secret)"
    )
    openapi.add_argument("--output", type=Path, help="write it to this file instead of stdout")
    openapi.set_defaults(handler=openapi_command)


def openapi_command(args: argparse.Namespace) -> int:
    from app.main import create_app

    try:
        settings = load_settings()
    except ConfigError as exc:
        return report(exc)
    document = json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(document)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(document, encoding="utf-8")
    return 0
