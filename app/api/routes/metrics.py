"""`GET /metrics`, on the main port, never open to the world.

Access rule (docs/operations.md, "Metrics"):
- if `METRICS_TOKEN` is configured (a secret: env, `_FILE`, `SECRETS_DIR` or a cloud reference,
  rotating like the others), a request needs `Authorization: Bearer <token>`, from anywhere;
- in production that is the ONLY way in (without a token configured, `/metrics` answers 403);
- in development and test, without a token, clients in `METRICS_ALLOWED_NETWORKS` (default:
  loopback) are answered. The client address is the one the trusted-proxy rule settled on.
Why not a second port: with several uvicorn workers each would have to bind it, and behind a
Service/Ingress a port is exactly as exposed as a path. A token works the same everywhere.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.config import METRICS_TOKEN, Settings
from app.resources import resources_of
from app.secrets import ConfigError, ConfigProblem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[Network]:
    networks: list[Network] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                [
                    ConfigProblem(
                        "METRICS_ALLOWED_NETWORKS", "env", f"{part!r} is not an IP network (CIDR)"
                    )
                ]
            ) from None
    return networks


def client_allowed(client: str | None, networks: Sequence[Network]) -> bool:
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def router(settings: Settings) -> APIRouter:
    # Production never trusts a network: a local reverse proxy or sidecar connects from
    # loopback too, so "loopback only" would admit whoever reaches the proxy.
    allowed_networks = (
        [] if settings.is_production else parse_networks(settings.metrics_allowed_networks)
    )
    metrics = APIRouter()

    @metrics.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        resources = resources_of(request)
        expected = resources.store.parsed(METRICS_TOKEN)
        if expected is not None:
            presented = _bearer(request)
            if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
                return JSONResponse(
                    {"detail": "Not authenticated"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif not client_allowed(request.client.host if request.client else None, allowed_networks):
            return JSONResponse({"detail": "Forbidden"}, status_code=403)
        return Response(
            resources.metrics.exposition(),
            media_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )

    return metrics
