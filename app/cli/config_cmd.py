"""`config check`: resolve everything as the server would and print where each setting came from.

Output is a table for people; secret values are never printed, only their source (env, file, dir,
aws-sm, ...), origin (a variable name, a path or a reference), status and the version id the
backend reported. Plain settings show their value, except any password inside a URL. On any
problem the table still shows what did resolve, the problems follow on stderr one per line, and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.cli.common import load_settings, report, resolve_all, setting_origin
from app.config import Settings
from app.secrets import ConfigError, ConfigProblem, SecretStore

Row = tuple[str, str, str, str]
HEADER: Row = ("SETTING", "SOURCE", "STATUS", "DETAIL")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="inspect the resolved configuration")
    actions = config.add_subparsers(dest="action", required=True, metavar="<action>")
    check = actions.add_parser("check", help="resolve every setting and secret; exit 1 on problems")
    check.set_defaults(handler=check_command)


#: Query parameters that carry credentials in DSNs (`?password=`, libpq's `sslpassword`, ...).
CREDENTIAL_PARAMETERS = frozenset(
    {"password", "pass", "pwd", "passwd", "sslpassword", "secret", "token", "api_key", "apikey"}
)


def mask_url_password(value: str) -> tuple[str, bool]:
    """The URL with any password masked (`user:***@`, `?password=***`), and whether one was
    there."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value, False
    if not parts.scheme:
        return value, False
    masked = False
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port is not None else ""
        netloc, masked = f"{parts.username or ''}:***@{host}{port}", True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in CREDENTIAL_PARAMETERS for key, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in CREDENTIAL_PARAMETERS else v) for k, v in pairs],
                safe="*",
            )
            masked = True
    if not masked:
        return value, False
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), True


def _plain_rows(settings: Settings, problems: list[ConfigProblem]) -> list[Row]:
    refused = {p.setting: p for p in problems}
    rows: list[Row] = []
    for field in type(settings).model_fields:
        name = field.upper()
        value = getattr(settings, field)
        shown, had_password = (
            mask_url_password(value) if isinstance(value, str) else (repr(value), False)
        )
        status = "warning" if had_password else "ok"
        detail = repr(shown) if isinstance(value, str) else shown
        if had_password:
            detail += (
                f"  (password in the URL is discouraged: use {name.removesuffix('_URL')}_PASSWORD)"
            )
        if name in refused:
            status, detail = "error", f"{detail}  ({refused[name].message})"
        source = setting_origin(name) if field in settings.model_fields_set else "default"
        rows.append((name, source, status, detail))
    return rows


def _secret_rows(store: SecretStore) -> list[Row]:
    """One row per DECLARED secret: source, status and origin (a variable name, a path or a
    reference) and the version its backend reported. Never a value."""
    rows: list[Row] = []
    for spec in store.registry:
        name = spec.name
        entry = store.entry(name)
        problem = store.problems.get(name)
        binding = store.bindings.get(name)
        if problem is not None:
            where = f" (from {problem.origin})" if problem.origin else ""
            rows.append(
                (name, binding.source if binding else "-", "error", f"{problem.message}{where}")
            )
        elif entry is not None:
            detail = entry.origin + (f" (version {entry.version})" if entry.version else "")
            status = "generated" if entry.source == "generated" else "ok"
            rows.append((name, entry.source, status, detail))
        elif binding is not None:  # resolved fine, but the set as a whole was refused
            rows.append((name, binding.source, "ok", binding.origin))
        elif spec.required_in(store.config.is_production):
            rows.append(
                (name, "-", "missing", "required: set it, its _FILE, or a file in SECRETS_DIR")
            )
        else:
            rows.append((name, "-", "not set", ""))
    return rows


def print_table(rows: list[Row]) -> None:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(3)]
    for row in [HEADER, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")


def check_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        return report(exc)
    store, problems = asyncio.run(_resolve(settings))
    print_table(_plain_rows(settings, problems))
    print()
    print_table(_secret_rows(store))
    print()
    if problems:
        print(f"FAILED: {len(problems)} problem(s); the server would refuse to start.")
        return report(ConfigError(problems))
    print(f"OK: configuration for APP_ENV={settings.app_env} resolves.")
    return 0


async def _resolve(settings: Settings) -> tuple[SecretStore, list[ConfigProblem]]:
    store, problems = await resolve_all(settings)
    await store.aclose()
    return store, problems
