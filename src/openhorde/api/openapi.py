"""The OpenAPI document tells the truth about errors (every route lists the error answers it can give) and
lists the ``X-Fields`` header every API route takes.

FastAPI documents only the success answer and a 422 that we never send (our validation
handler answers 400 ``ValidationFailed``). ``install_openapi`` derives each route's error
statuses from what the route depends on and takes, once, before the document is built:

- 400: the route takes a body, path or query parameters (validation, and the domain's bad-request rules);
- 401 and 403: it authenticates the caller (unknown key; not allowed, deleted, timed out);
- 404: it names a thing in its path;
- 429: it is under the rate limits (every ``/api/v2`` route).

A route adds other statuses it can answer (413, 503, …) in its own ``responses=``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from openhorde.api.schemas.errors import RequestError

ERROR_DESCRIPTIONS = {
    400: "Bad request: the input failed validation or a rule of the horde.",
    401: "The API key is unknown.",
    403: "The caller may not do this.",
    404: "No such thing.",
    413: "The upload is too large.",
    429: "Too many requests; retry after the Retry-After header's seconds.",
    503: "The horde is in maintenance; retry later.",
}
AUTHENTICATING = frozenset({"_api_user", "_api_caller", "_optional_user"})
"""Dependencies (by function name) that check the caller's API key."""
RATE_LIMITED = frozenset({"_rate_limits"})
REF_TEMPLATE = "#/components/schemas/{model}"


def _dependency_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            names.add(getattr(sub.call, "__name__", ""))
        names |= _dependency_names(sub)
    return names


def _has_input(dependant: Dependant) -> bool:
    if dependant.path_params or dependant.query_params or dependant.body_params:
        return True
    return any(_has_input(sub) for sub in dependant.dependencies)


def error_statuses(dependant: Dependant) -> set[int]:
    """The error statuses a route can answer, from its (effective) dependencies and parameters."""
    names = _dependency_names(dependant)
    statuses: set[int] = set()
    if _has_input(dependant):
        statuses.add(400)
    if names & AUTHENTICATING:
        statuses |= {401, 403}
    if names & RATE_LIMITED:
        statuses |= {403, 429}  # 403: an IP timeout
    if dependant.path_params:
        statuses.add(404)
    return statuses


def error_response(status: int) -> dict[str, Any]:
    """One ``responses=`` entry for an error status: the ``RequestError`` body."""
    return {"model": RequestError, "description": ERROR_DESCRIPTIONS.get(status, "Error.")}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route's extra error statuses."""
    return {status: error_response(status) for status in statuses}


def _document_errors(app: FastAPI, document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["RequestError"] = RequestError.model_json_schema(ref_template=REF_TEMPLATE)
    body = {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="RequestError")}}}
    paths = document.get("paths", {})
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or context.path_format not in paths:
            continue
        statuses = error_statuses(context.dependant)
        for method in context.methods or ():
            operation = paths[context.path_format].get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # validation failures answer 400 ValidationFailed
            for status in sorted(statuses):
                responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status], "content": body})


FIELD_MASK_PARAMETER = {
    "name": "X-Fields",
    "in": "header",
    "required": False,
    "description": "Only these fields of a successful answer, e.g. ``id,name,kudos_details{accumulated}`` "
    "(``*``: the rest); a malformed mask is answered 400 ``InvalidFieldMask``.",
    "schema": {"type": "string", "format": "mask"},
}


def _document_field_masks(document: dict[str, Any]) -> None:
    """Every API operation takes ``X-Fields`` (``api/field_masks.py``)."""
    for path, operations in document.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            operation.setdefault("parameters", []).append(FIELD_MASK_PARAMETER)


def install_openapi(app: FastAPI) -> None:
    """Build ``app``'s OpenAPI document with every route's error answers and without FastAPI's 422."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            _document_errors(app, document)
            _document_field_masks(document)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]
