"""Canary test: a distinct canary in EVERY secret, then every route of the app (found by walking
the router, so endpoints added later are covered automatically) is called with good input, bad
input (422) and, in-process, a forced 500, and the CLI runs. Nothing the app emits -- response
bodies and headers, stdout, stderr, log records -- may contain any canary, plain, URL-encoded or
base64-encoded. Request input is never echoed either."""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import ValidationError

from app.cli.common import settings_problems
from app.config import SECRETS, Settings
from app.logs import configure_logging
from app.main import create_app
from app.resources import resources_of
from tests.conftest import SettingsFactory
from tests.support.app import client_for, lifespan
from tests.support.private_services import private_redis
from tests.support.server import PRODUCTION, run_cli, serve

pytestmark = pytest.mark.slow

EMAIL = f"canary-{uuid.uuid4().hex[:8]}@example.com"
PASSWORD = "Correct horse battery staple 9"
INPUT_CANARY = "inputcanary" + secrets.token_hex(6)


def make_canary(name: str) -> str:
    # `+`, `/` and `=` make the URL-encoded form differ from the plain one.
    return f"cnry{name.lower().replace('_', '')}{secrets.token_hex(12)}+/="


@dataclass(frozen=True)
class Canaries:
    """Secret values by setting, plus the canary strings each one carries."""

    values: dict[str, str]
    canaries: list[str]

    @classmethod
    def make(cls) -> Canaries:
        values: dict[str, str] = {}
        canaries: list[str] = []
        for name in SECRETS.names():
            canary = make_canary(name)
            canaries.append(canary)
            if name == "DATABASE_CREDENTIALS":
                # The shared test PostgreSQL trusts every password; the user must exist.
                values[name] = json.dumps({"username": "postgres", "password": canary})
            elif name == "DATA_KEYS":
                # A ring must parse: the canary is the key material (32 random bytes).
                material = secrets.token_bytes(32)
                canary = base64.urlsafe_b64encode(material).decode().rstrip("=")
                canaries[-1] = canary
                jwk = {"kty": "oct", "alg": "A256GCM", "kid": "canary", "k": canary}
                values[name] = json.dumps({"keys": [jwk]})
            else:
                values[name] = canary
        return cls(values, canaries)

    def forbidden(self) -> list[str]:
        found = []
        for canary in self.canaries:
            raw = canary.encode()
            found += [
                canary,
                quote(canary, safe=""),
                quote_plus(canary),
                quote(canary),
                base64.b64encode(raw).decode(),
                base64.urlsafe_b64encode(raw).decode(),
                base64.b64encode(raw).decode().rstrip("="),
                base64.urlsafe_b64encode(raw).decode().rstrip("="),
            ]
        return found

    def assert_absent(self, haystack: str, where: str) -> None:
        for needle in self.forbidden():
            assert needle not in haystack, f"a secret canary leaked into {where}"


# ---- walking the app ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app routes, including routers included into routers and routes
    hidden from the schema. Logout-like endpoints go last so the others see a live token."""

    def walk(routes: list[Any], prefix: str) -> Iterator[Endpoint]:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # FastAPI >= 0.120 keeps included routers lazily
                context_prefix = getattr(getattr(route, "include_context", None), "prefix", "")
                yield from walk(included.routes, prefix + (context_prefix or ""))
                continue
            path = getattr(route, "path", None)
            if path is None:
                continue
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                if method != "HEAD":
                    yield Endpoint(method, prefix + path)

    found = sorted(
        set(walk(list(app.routes), "")), key=lambda e: ("logout" in e.path, e.path, e.method)
    )
    assert len(found) >= 3
    return found


class Examples:
    """Request values generated from the OpenAPI schema, with a small vocabulary so that a
    register -> login -> authenticated call sequence works without knowing the endpoints."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tokens: dict[str, str] = {}

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.spec
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if self.resolve(s).get("type") != "null"]
                return self.resolve(options[0] if options else schema[key][0])
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return merged
        return schema

    def value(self, schema: dict[str, Any], name: str = "") -> Any:
        schema = self.resolve(schema)
        lowered = name.lower()
        if lowered in {"email", "username"}:
            return EMAIL
        if lowered == "password":
            return PASSWORD
        if lowered in self.tokens:
            return self.tokens[lowered]
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type", "string")
        if kind == "object":  # required fields, and optional ones the vocabulary knows
            required = set(schema.get("required", []))
            return {
                prop: self.value(sub, prop)
                for prop, sub in schema.get("properties", {}).items()
                if prop in required
                or prop.lower() in {"email", "username", "password", *self.tokens}
            }
        if kind == "array":
            return [self.value(schema.get("items", {}), name)]
        if kind == "integer":
            return max(int(schema.get("minimum", 1)), 1)
        if kind == "number":
            return float(schema.get("minimum", 1))
        if kind == "boolean":
            return True
        literal = re.fullmatch(r"\^(\w+)\$", schema.get("pattern", ""))
        if literal:
            return literal.group(1)
        fmt = schema.get("format")
        if fmt == "email":
            return EMAIL
        if fmt == "uuid":
            return str(uuid.uuid4())
        return "x" * max(int(schema.get("minLength", 1)), 8)

    def operation(self, endpoint: Endpoint) -> dict[str, Any]:
        operation: dict[str, Any] = (
            self.spec.get("paths", {}).get(endpoint.path, {}).get(endpoint.method.lower(), {})
        )
        return operation

    def body(self, endpoint: Endpoint) -> tuple[str | None, dict[str, Any] | None]:
        content = self.operation(endpoint).get("requestBody", {}).get("content", {})
        for media in (
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            if media in content:
                return media, self.value(content[media].get("schema", {}))
        return None, None

    def url(self, endpoint: Endpoint, bad: bool = False) -> tuple[str, dict[str, str]]:
        path, query = endpoint.path, {}
        for parameter in self.operation(endpoint).get("parameters", []):
            sample = (
                INPUT_CANARY
                if bad
                else str(self.value(parameter.get("schema", {}), parameter["name"]))
            )
            if parameter.get("in") == "path":
                path = path.replace("{" + parameter["name"] + "}", sample)
            elif parameter.get("in") == "query" and (parameter.get("required") or bad):
                query[parameter["name"]] = sample
        path = re.sub(r"\{[^}]+\}", INPUT_CANARY if bad else "1", path)
        return path, query

    def learn(self, response: httpx.Response) -> None:
        """Keep tokens the API hands out, for the calls that need them."""
        try:
            document = response.json()
        except ValueError:
            return
        if isinstance(document, dict):
            for key, value in document.items():
                if isinstance(value, str) and key.endswith("token"):
                    self.tokens[key.lower()] = value


async def exercise(
    client: httpx.AsyncClient,
    routes: list[Endpoint],
    spec: dict[str, Any],
    credentials: dict[str, str] | None = None,
) -> list[httpx.Response]:
    """Good input twice (the second pass has tokens), then bad input, for every endpoint.
    `credentials` maps a path to the bearer token it needs beyond a user's access token."""
    examples = Examples(spec)
    credentials = credentials or {}
    responses: list[httpx.Response] = []
    for _ in range(2):
        for endpoint in routes:
            path, query = examples.url(endpoint)
            media, body = examples.body(endpoint)
            headers = {}
            if endpoint.path in credentials:
                headers["Authorization"] = f"Bearer {credentials[endpoint.path]}"
            elif "access_token" in examples.tokens:
                headers["Authorization"] = f"Bearer {examples.tokens['access_token']}"
            if media == "application/json":
                response = await client.request(
                    endpoint.method, path, params=query, json=body, headers=headers
                )
            elif media is not None:
                response = await client.request(
                    endpoint.method, path, params=query, data=body, headers=headers
                )
            else:
                response = await client.request(
                    endpoint.method, path, params=query, headers=headers
                )
            examples.learn(response)
            responses.append(response)
    bad_responses = []
    for endpoint in routes:
        path, query = examples.url(endpoint, bad=True)
        query["access_token"] = INPUT_CANARY  # tokens in query strings are ignored
        headers = {"Authorization": f"Bearer {INPUT_CANARY}"}
        media, body = examples.body(endpoint)
        if media is not None:
            wrong = _wrong_types(copy.deepcopy(body))
            if media == "application/json":
                bad_responses.append(
                    await client.request(
                        endpoint.method, path, params=query, json=wrong, headers=headers
                    )
                )
                bad_responses.append(
                    await client.request(
                        endpoint.method,
                        path,
                        params=query,
                        headers={**headers, "Content-Type": "application/json"},
                        content=f'{{"broken": "{INPUT_CANARY}',
                    )
                )
            else:
                bad_responses.append(
                    await client.request(
                        endpoint.method,
                        path,
                        params=query,
                        data={"unexpected": INPUT_CANARY},
                        headers=headers,
                    )
                )
        else:
            bad_responses.append(
                await client.request(endpoint.method, path, params=query, headers=headers)
            )
    for response in bad_responses:
        assert INPUT_CANARY not in response.text, (
            f"{response.request.method} {response.request.url.path} echoed request input"
        )
    return responses + bad_responses


def _wrong_types(body: Any) -> Any:
    """Each field becomes a list holding the input canary: invalid for any scalar field."""
    if isinstance(body, dict):
        return {key: [INPUT_CANARY, {"nested": INPUT_CANARY}] for key in body} or {
            "unexpected": [INPUT_CANARY]
        }
    return [INPUT_CANARY]


def metrics_credentials(canaries: Canaries) -> dict[str, str]:
    """/metrics wants METRICS_TOKEN (when that secret exists) as its bearer token."""
    token = canaries.values.get("METRICS_TOKEN")
    return {"/metrics": token} if token else {}


def transcript(responses: list[httpx.Response]) -> str:
    return "\n".join(f"{r.status_code} {dict(r.headers)} {r.text}" for r in responses)


# ---- in-process -----------------------------------------------------------------------------


class Records(logging.Handler):
    """Every record as the sinks would see it: formatted, plus its raw attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{logging.Formatter().format(record)} {vars(record)!r}")


@pytest.fixture
def real_logging(settings: Settings) -> Iterator[Records]:
    """`configure_logging` as the server runs it (its handler writes to the captured stderr),
    with a record collector after it."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    configure_logging(settings)
    records = Records()
    root.addHandler(records)
    yield records
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def canaries() -> Canaries:
    return Canaries.make()


@pytest.fixture
async def canary_redis(canaries: Canaries) -> AsyncIterator[str]:
    with private_redis("--requirepass", canaries.values["REDIS_PASSWORD"]) as server:
        yield server.url


def add_forced_errors(app: FastAPI) -> None:
    """Careless code: an exception and a log line carrying secrets. Must still not leak."""

    async def boom(request: Request) -> None:
        store = resources_of(request).store
        password = store.get("DATABASE_PASSWORD").get_secret_value()
        logging.getLogger("app.careless").warning(
            "connecting with %s (%s)", password, base64.b64encode(password.encode()).decode()
        )
        raise RuntimeError(f"could not use {password} / {quote(password, safe='')}")

    app.add_api_route("/__canary__/boom", boom, methods=["GET"])


def test_settings_repr_and_errors_hide_secrets(canaries: Canaries) -> None:
    values = {name.lower(): value for name, value in canaries.values.items()}
    settings = Settings(_env_file=None, app_env="test", **values)
    canaries.assert_absent(
        repr(settings) + str(settings) + repr(settings.model_dump()), "Settings repr"
    )
    with pytest.raises(ValidationError) as raised:
        Settings(
            _env_file=None,
            jwt_keys={"nested": canaries.values["JWT_KEYS"]},
            redis_password=[canaries.values["REDIS_PASSWORD"]],
        )
    canaries.assert_absent(str(raised.value), "a settings validation error")
    canaries.assert_absent(str(settings_problems(raised.value)), "config error lines")
    canaries.assert_absent(
        repr(raised.value.errors(include_input=False, include_context=False)), "errors()"
    )


async def test_in_process_app_never_emits_a_canary(
    make_settings: SettingsFactory,
    canaries: Canaries,
    canary_redis: str,
    real_logging: Records,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = {name.lower(): value for name, value in canaries.values.items()}
    settings = make_settings(redis_url=canary_redis, **values)
    app = create_app(settings)
    add_forced_errors(app)
    routes = endpoints(app)
    async with (
        lifespan(app),
        client_for(app, raise_app_exceptions=False) as client,
    ):
        assert (await client.get("/health/ready")).status_code == 200  # redis auth works
        responses = await exercise(client, routes, app.openapi(), metrics_credentials(canaries))
    statuses = {r.status_code for r in responses}
    forced = [r for r in responses if r.request.url.path == "/__canary__/boom"]
    assert forced
    assert {r.status_code for r in forced} == {500}
    assert forced[0].json() == {"detail": "Internal server error"}
    assert 422 in statuses
    assert any(200 <= s < 300 for s in statuses)
    captured = capsys.readouterr()
    logs = "\n".join(real_logging.lines)
    assert "RuntimeError" in logs, "the forced error should have been logged (redacted)"
    canaries.assert_absent(transcript(responses), "HTTP responses")
    canaries.assert_absent(captured.out + captured.err, "stdout/stderr")
    canaries.assert_absent(logs, "log records")


# ---- real processes ---------------------------------------------------------------------------


async def test_server_and_cli_processes_never_emit_a_canary(
    server_env: dict[str, str],
    canaries: Canaries,
    canary_redis: str,
    tmp_path: Path,
    make_settings: SettingsFactory,
) -> None:
    env = {k: v for k, v in server_env.items() if k not in SECRETS.variables()}
    mount = tmp_path / "mount"
    mount.mkdir()
    for index, (name, value) in enumerate(sorted(canaries.values.items())):
        how = ("env", "file", "dir")[index % 3]  # every kind of source carries a canary
        if how == "env":
            env[name] = value
        elif how == "file":
            path = tmp_path / f"{name.lower()}.secret"
            path.write_text(value + "\n")
            env[f"{name}_FILE"] = str(path)
        else:
            (mount / name.lower()).write_text(value + "\n")
    env.update({"SECRETS_DIR": str(mount), "REDIS_URL": canary_redis, "LOG_LEVEL": "debug"})

    blueprint = create_app(make_settings())  # the same routes the process serves
    with serve(env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.get("/health/ready")).status_code == 200
            responses = await exercise(
                client, endpoints(blueprint), blueprint.openapi(), metrics_credentials(canaries)
            )
    assert any(r.status_code == 422 for r in responses)
    canaries.assert_absent(transcript(responses), "HTTP responses from the server process")
    canaries.assert_absent(server.output(), "the server's stdout/stderr")

    check = run_cli("config", "check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    canaries.assert_absent(check.stdout + check.stderr, "config check output")

    broken = {
        **env,
        **PRODUCTION,
        "DATABASE_CREDENTIALS": json.dumps({"user": "nobody", "password": canaries.canaries[0]}),
    }
    broken.pop("DATABASE_CREDENTIALS_FILE", None)
    for command in (["config", "check"], ["serve"]):
        failed = run_cli(*command, env=broken, timeout=30)
        assert failed.returncode != 0
        assert "DATABASE_CREDENTIALS" in failed.stderr
        canaries.assert_absent(failed.stdout + failed.stderr, f"{command} failure output")


def test_stream_capture_sanity() -> None:
    """The assertion helper itself finds every encoded form (so a pass means something)."""
    canaries = Canaries.make()
    canary = canaries.canaries[0]
    for form in (canary, quote(canary, safe=""), base64.b64encode(canary.encode()).decode()):
        with pytest.raises(AssertionError):
            canaries.assert_absent(io.StringIO(f"x {form} y").getvalue(), "test")
