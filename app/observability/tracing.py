"""OpenTelemetry tracing: optional (`pip install '.[otel]'`), off unless configured.

It is switched on by `OTEL_EXPORTER_OTLP_ENDPOINT` (the standard variable; the exporter also
honours the other standard `OTEL_EXPORTER_OTLP_*` variables such as headers). Everything is
imported lazily, so a service without the extra never loads OpenTelemetry. Spans cover FastAPI
requests, SQLAlchemy statements and Redis commands; they carry no secret: SQL parameters are not
recorded by the SQLAlchemy instrumentation and Redis command arguments are not captured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from app.config import Settings
from app.observability.middleware import QUIET_PATHS
from app.secrets import ConfigError, ConfigProblem

logger = logging.getLogger("app.observability")

OTEL_EXTRA_MISSING = (
    "is set but OpenTelemetry is not installed; install the extra: "
    "pip install 'fastapi-secrets-template[otel]'"
)


@dataclass
class Tracing:
    """What `setup_tracing` switched on, so the lifespan can switch it off again."""

    provider: Any
    instrumentors: list[Any]

    def shutdown(self) -> None:
        for instrumentor in self.instrumentors:
            try:
                instrumentor.uninstrument()
            except Exception:
                logger.exception("could not remove %s", type(instrumentor).__name__)
        self.provider.shutdown()  # flushes the batch of spans still queued


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def check_tracing_available(settings: Settings) -> None:
    """Fail at startup, naming the setting and the extra, when tracing is asked for but the
    packages are missing (rather than silently not tracing)."""
    if not tracing_enabled(settings):
        return
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.instrumentation.fastapi
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise ConfigError(
            [ConfigProblem("OTEL_EXPORTER_OTLP_ENDPOINT", "env", OTEL_EXTRA_MISSING)]
        ) from None


def instrument_app(app: FastAPI, settings: Settings) -> Any | None:
    """Build the tracer provider and instrument the FastAPI app (must happen before the app
    starts serving). Returns the provider, or None when tracing is off."""
    if not tracing_enabled(settings):
        return None
    check_tracing_available(settings)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = str(settings.otel_exporter_otlp_endpoint).rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": settings.otel_service_name,
                "deployment.environment": settings.app_env,
            }
        )
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=",".join(sorted(QUIET_PATHS))
    )
    return provider


def instrument_resources(provider: Any, engine: Any, redis: Any) -> Tracing:
    """Add SQLAlchemy and Redis spans once the lifespan has created the engine and client."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentors: list[Any] = []
    sqlalchemy = SQLAlchemyInstrumentor()
    # The instrumentation declares `sqlalchemy < 2.1` but only uses the engine event API, which
    # 2.1 keeps; tests/observability/test_tracing.py checks the statement spans arrive.
    sqlalchemy.instrument(engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True)
    instrumentors.append(sqlalchemy)
    redis_instrumentor = RedisInstrumentor()
    if not redis_instrumentor.is_instrumented_by_opentelemetry:
        redis_instrumentor.instrument(tracer_provider=provider)
        instrumentors.append(redis_instrumentor)
    return Tracing(provider, instrumentors)
