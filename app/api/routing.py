"""What every router shares: the responses FastAPI itself may give, response headers, and how
routers join the app (`add_routes`).

A route that reads a JSON (or form) body can also answer 400 when the body cannot be parsed at
all, before validation; declaring it keeps the OpenAPI document true, which the contract fuzz
test (tests/contract) checks. Build routers that take bodies with `body_router()`.

Some refusals depend on state no schema can express: a wrong TOTP code, a used or unknown
mailed token, scopes the caller does not hold. Name their statuses with
`openapi_extra=refuses_valid_input(400)`: the OpenAPI document then says that a well-formed
request may still get that answer, and the contract test does not count it as a schema-valid
request wrongly refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

#: FastAPI's answer to a body it cannot parse (malformed JSON, a broken multipart form).
UNPARSABLE_BODY: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body could not be parsed"}
}

#: Responses carrying credentials or personal data must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


#: The OpenAPI extension `refuses_valid_input` writes (read by tests/contract).
REFUSES_VALID_INPUT = "x-refuses-valid-input"


def refuses_valid_input(*statuses: int) -> dict[str, Any]:
    """`openapi_extra` for an operation that refuses some schema-valid requests with `statuses`
    (each must also be documented in its `responses`)."""
    return {REFUSES_VALID_INPUT: sorted(statuses)}


def body_router(prefix: str, tags: list[str]) -> APIRouter:
    """An `APIRouter` whose routes document the 400 of an unparsable body."""
    return APIRouter(prefix=prefix, tags=list(tags), responses=UNPARSABLE_BODY)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """`app.include_router(router)`, with the router's routes made the app's own.

    Since 0.165, FastAPI keeps an included router as one routing node that every request walks:
    each of its routes is matched twice (once to find the node, once inside it) with context
    bookkeeping per candidate. Measured in process, that was 30 of the 45 us `/health/live`
    cost over a bare endpoint. Re-declaring each route on the app, as FastAPI itself did before
    0.165, serves the same routes through the app's flat list: the app's operationId rule and
    `app.dependency_overrides` apply, and the router's prefix, tags, dependencies and responses
    are already part of each route.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"add_routes copies API routes only, not {type(route).__name__}")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
            max_body_size=route.max_body_size,
            form_limits=route.form_limits,
        )
