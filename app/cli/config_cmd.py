"""`config check`: resolve everything as the server would and print where each setting came from.

Output is a table for people; secret values are never printed, only their source, origin
(a variable name, a path or a reference) and the version id the backend reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from app.cli.common import load_settings, report
from app.config import SECRET_SETTINGS, Settings
from app.secrets import ConfigError, SecretStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="inspect the resolved configuration")
    actions = config.add_subparsers(dest="action", required=True, metavar="<action>")
    check = actions.add_parser("check", help="resolve every setting and secret; exit 1 on problems")
    check.set_defaults(handler=check_command)


def _plain_source(settings: Settings, field: str) -> str:
    name = field.upper()
    if any(key.upper() == name for key in os.environ):
        return "env"
    return "env (.env)" if field in settings.model_fields_set else "default"


def _rows(settings: Settings, store: SecretStore) -> list[tuple[str, str, str, str]]:
    secret_fields = {name.lower() for name in SECRET_SETTINGS}
    secret_fields |= {f"{name}_file" for name in secret_fields}
    rows = []
    for field in type(settings).model_fields:
        if field in secret_fields:
            continue
        value = repr(getattr(settings, field))
        rows.append((field.upper(), _plain_source(settings, field), "ok", value))
    for row in store.describe():
        detail = row["origin"]
        if row["version"]:
            detail = f"{detail} (version {row['version']})"
        rows.append((row["setting"], row["source"], row["status"], detail))
    return rows


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("SETTING", "SOURCE", "STATUS", "DETAIL")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")


def check_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        store = asyncio.run(_open(settings))
    except ConfigError as exc:
        return report(exc)
    _print_table(_rows(settings, store))
    print(f"\nOK: configuration for APP_ENV={settings.app_env} resolves.")
    return 0


async def _open(settings: Settings) -> SecretStore:
    store = await SecretStore.open(settings)
    await store.aclose()
    return store
