"""`python -m app openapi` (offline) and `make client`'s generator: the document describes the
items routes with readable operation ids, and the typed client generated from it works against
the real app (register, log in, create and page through items)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.support.app import asgi_transport, running_app
from tests.support.server import base_env, free_port, run_cli

PACKAGE = "fastapi_secrets_template_client"


def _offline_env() -> dict[str, str]:
    # Nothing to reach: the command must not touch the database, Redis or any secret.
    return base_env(
        DATABASE_URL=f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )


def test_prints_the_document_offline() -> None:
    result = run_cli("openapi", env=_offline_env())
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    paths = document["paths"]
    assert set(paths["/api/v1/items"]) == {"get", "post"}
    assert set(paths["/api/v1/items/{item_id}"]) == {"get", "patch", "delete"}
    ids = [operation["operationId"] for path in paths.values() for operation in path.values()]
    assert len(ids) == len(set(ids)), "operation ids must be unique (generated function names)"
    assert {"create_item", "list_items", "get_item", "update_item", "delete_item"} <= set(ids)
    cursor = next(p for p in paths["/api/v1/items"]["get"]["parameters"] if p["name"] == "cursor")
    assert "pattern" in json.dumps(cursor["schema"])


def test_writes_the_document_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "openapi.json"
    result = run_cli("openapi", "--output", str(target), env=_offline_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "/api/v1/items" in json.loads(target.read_text())["paths"]


@pytest.fixture
def generated_client(tmp_path: Path) -> Iterator[Any]:
    """The client `make client` generates, imported from a temporary directory."""
    generator = Path(sys.executable).with_name("openapi-python-client")
    if not generator.exists():
        pytest.skip("openapi-python-client is not installed (pip install -e '.[dev]')")
    document = tmp_path / "openapi.json"
    assert run_cli("openapi", "--output", str(document), env=_offline_env()).returncode == 0
    output = tmp_path / "python"
    env = {**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(generator), "generate", "--path", str(document), "--output-path", str(output)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(output))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(output))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


async def test_the_generated_client_talks_to_the_app(
    generated_client: Any, settings: Settings
) -> None:
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    for module in ("auth.register", "auth.login", "items.create_item", "items.list_items"):
        importlib.import_module(f"{api.__name__}.{module}")
    email, password = "client-user@example.com", "a client password"
    async with running_app(settings) as app:
        # The generated clients build their own httpx clients; only the transport is ours.
        options = {
            "base_url": "http://testserver",
            "httpx_args": {"transport": asgi_transport(app)},
        }
        client = generated_client.Client(**options)
        registered = await api.auth.register.asyncio(
            client=client, body=models.RegisterIn(email=email, password=password)
        )
        assert isinstance(registered, models.UserOut)
        tokens = await api.auth.login.asyncio(
            client=client, body=models.BodyLogin(username=email, password=password)
        )
        assert isinstance(tokens, models.TokenPair)

        authed = generated_client.AuthenticatedClient(token=tokens.access_token, **options)
        for title in ("first", "second", "third"):
            created = await api.items.create_item.asyncio(
                client=authed, body=models.ItemIn(title=title)
            )
            assert isinstance(created, models.ItemOut)
        first = await api.items.list_items.asyncio(client=authed, limit=2)
        assert isinstance(first, models.PageItemOut)
        assert [item.title for item in first.items] == ["third", "second"]
        rest = await api.items.list_items.asyncio(client=authed, limit=2, cursor=first.next_cursor)
        assert [item.title for item in rest.items] == ["first"]
        assert rest.next_cursor is None
        # Without the token, the same call is refused (documented 401: parsed as None).
        anonymous = await api.items.list_items.asyncio_detailed(client=client)
        assert anonymous.status_code == 401
