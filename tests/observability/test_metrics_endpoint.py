"""`GET /metrics`: Prometheus text format, HTTP metrics by route template, and access control
(bearer METRICS_TOKEN when configured, else only METRICS_ALLOWED_NETWORKS)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from app.config import Settings
from app.main import create_app
from tests.conftest import SettingsFactory
from tests.observability.scraping import parse_metrics, scrape, value
from tests.support.app import client_for, lifespan


@asynccontextmanager
async def serving(
    settings: Settings, client_address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        lifespan(app),
        client_for(app, client=(client_address, 40000)) as client,
    ):
        yield client


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/no/such/page/123")).status_code == 404
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    live = {"method": "GET", "route": "/health/live"}
    assert delta("http_requests_total", status="200", **live) == 3
    assert delta("http_request_duration_seconds_count", **live) == 3
    assert (value(after, "http_request_duration_seconds_bucket", le="+Inf", **live) or 0) >= 3
    # Unmatched paths share one label: a scanner cannot create a series per URL.
    assert delta("http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert not any("/no/such" in str(labels) for (_, labels) in after)


async def test_route_templates_not_raw_paths_label_parameterised_routes(
    make_settings: SettingsFactory,
) -> None:
    app = create_app(make_settings())

    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_api_route("/items/{item_id}", item)
    async with lifespan(app), client_for(app) as client:
        for n in (1, 2, 3):
            await client.get(f"/items/{n}")
        samples = await scrape(client)
    assert value(samples, "http_requests_total", route="/items/{item_id}", status="200") == 3
    assert not any("/items/1" in str(labels) for (_, labels) in samples)


async def test_pool_gauges_describe_the_live_pools(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/ready")).status_code == 200
    samples = await scrape(client)
    assert value(samples, "db_pool_size") == 10
    # Background work (the data-key counts) may hold a connection at the scrape's instant.
    checked_out = value(samples, "db_pool_checked_out")
    checked_in = value(samples, "db_pool_checked_in") or 0
    assert checked_out is not None
    assert 0 <= checked_out <= 10
    assert checked_in + checked_out >= 1, "connections were opened and are counted"
    assert value(samples, "db_pool_overflow") == 0
    assert (value(samples, "redis_pool_connections", state="idle") or 0) >= 1
    assert value(samples, "redis_pool_max_connections") == 100


async def test_without_a_token_only_allowed_networks_are_answered(
    make_settings: SettingsFactory,
) -> None:
    async with serving(make_settings(), client_address="10.1.2.3") as outsider:
        refused = await outsider.get("/metrics")
        assert refused.status_code == 403
        assert "http_requests_total" not in refused.text
    settings = make_settings(metrics_allowed_networks="10.0.0.0/8, 192.168.0.0/16")
    async with serving(settings, client_address="10.1.2.3") as pod_network:
        assert (await pod_network.get("/metrics")).status_code == 200
    async with serving(settings, client_address="127.0.0.1") as loopback:
        assert (await loopback.get("/metrics")).status_code == 403


async def test_a_configured_token_is_required_from_everywhere(
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    token = secrets.token_urlsafe(32)
    token_file = tmp_path / "metrics_token"
    token_file.write_text(token + "\n")
    async with serving(make_settings(metrics_token_file=str(token_file))) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    samples = parse_metrics(right.text)
    assert (
        value(
            samples, "secret_last_refresh_success_timestamp", setting="METRICS_TOKEN", source="file"
        )
        is not None
    )
    assert token not in right.text


async def test_metrics_can_be_switched_off(make_settings: SettingsFactory) -> None:
    async with serving(make_settings(metrics_enabled=False)) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/health/live")).headers["x-request-id"]


async def test_metrics_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_two_apps_in_one_process_have_separate_registries(
    make_settings: SettingsFactory,
) -> None:
    async with serving(make_settings()) as first, serving(make_settings()) as second:
        await first.get("/health/live")
        await first.get("/health/live")
        a = await scrape(first)
        b = await scrape(second)
    assert value(a, "http_requests_total", route="/health/live", status="200") == 2
    assert value(b, "http_requests_total", route="/health/live", status="200") is None
