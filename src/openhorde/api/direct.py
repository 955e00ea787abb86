"""The hot routes, called directly: the same route functions, their few dependencies resolved by hand.

Every worker pops and submits and every client checks once a second or more, so these calls are most of a
horde's traffic. FastAPI resolves a route's dependencies generically on each call, which cost more than the
whole work of a heartbeat or of a check answered from memory (0.15 ms of a 0.19 ms heartbeat, measured).
For the routes in ``HOT_ROUTES`` a plain Starlette route with the same path is put in front of FastAPI's: it
parses the body with the route's own model and the query parameters with FastAPI's own validation, resolves
each other parameter the route declares (by the name of its ``Annotated`` alias in ``api/deps.py``: the store,
the context, the caller...; a ``Request`` is the call's), enforces the rate limits as the ``/api/v2`` router's
dependency would (the image store's uploads have none), and calls the route function itself. So there is one
implementation, documented in the OpenAPI description by its FastAPI route; errors leave through the same
handlers (a body that does not validate raises FastAPI's own ``RequestValidationError``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, cast

import pydantic
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openhorde.api import deps, ratelimit
from openhorde.domain import accounts

HOT_ROUTES = frozenset(
    {
        ("GET", "/api/v2/status/heartbeat"),
        ("POST", "/api/v2/generate/async"),
        ("GET", "/api/v2/generate/check/{id}"),
        ("GET", "/api/v2/generate/status/{id}"),
        ("POST", "/api/v2/generate/pop"),
        ("POST", "/api/v2/generate/submit"),
        ("PUT", "/blobs/{folder}/{name}"),
    }
)
"""(method, path) of the routes served directly."""

Resolver = Callable[[Request, AsyncExitStack, dict[str, Any]], Awaitable[Any]]


async def _store(request: Request, stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return await stack.enter_async_context(request.app.state.db.store())


async def _reader(request: Request, stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return await stack.enter_async_context(request.app.state.db.reader())


async def _context(request: Request, _stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return request.app.state.context


async def _queue_view(request: Request, _stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return request.app.state.queue_view


async def _database(request: Request, _stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return request.app.state.db


async def _follower(request: Request, _stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return request.app.state.follower


async def _client_ip(request: Request, _stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return await deps.client_ip(request, request.app.state.context)


async def _api_user(request: Request, stack: AsyncExitStack, resolved: dict[str, Any]) -> Any:
    ctx = request.app.state.context
    store = resolved.get("store") or await _store(request, stack, resolved)
    return await accounts.authenticate(store, ctx.secret, ctx.keys, request.headers.get("apikey"))


async def _request(request: Request, _stack: AsyncExitStack, _resolved: dict[str, Any]) -> Any:
    return request


RESOLVERS: dict[str, Resolver] = {
    "Request": _request,
    "StoreDep": _store,
    "ReaderDep": _reader,
    "DatabaseDep": _database,
    "FollowerDep": _follower,
    "ContextDep": _context,
    "QueueViewDep": _queue_view,
    "ClientIp": _client_ip,
    "ApiUser": _api_user,
}
"""How to resolve a parameter, by the name of its annotation (an alias of ``api/deps.py``)."""


def _header_name(field: Any) -> str:
    """The HTTP header a FastAPI header parameter reads (its alias, underscores as hyphens unless told not to)."""
    name = str(field.alias)
    return name.replace("_", "-") if getattr(field.field_info, "convert_underscores", True) else name


def _body_error(error: pydantic.ValidationError) -> RequestValidationError:
    """A body that did not validate, as FastAPI reports it (locations start with "body")."""
    return RequestValidationError(
        [{**detail, "loc": ("body", *detail.get("loc", ()))} for detail in error.errors(include_url=False)]
    )


async def _parse_body(request: Request, model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"null")
    except pydantic.ValidationError as error:
        if not any(detail["type"] == "json_invalid" for detail in error.errors()):
            raise _body_error(error) from None
        # pydantic's parser refuses JSON that Python's accepts (a lone surrogate "\ud800"): parse it as FastAPI
        # does, so such a body gets the same answer (the wire models' own check) on every route.
        try:
            data = json.loads(raw)
        except ValueError:
            raise _body_error(error) from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise _body_error(error) from None


class _DirectEndpoint:
    """Serves one FastAPI route without FastAPI's dependency machinery (see the module's docstring)."""

    def __init__(self, route: APIRoute, rate_limited: bool) -> None:
        self.route = route
        self.rate_limited = rate_limited
        self.endpoint = route.endpoint
        self.body_name: str | None = None
        self.body_model: type[pydantic.BaseModel] | None = None
        self.path_params: list[str] = []
        self.headers: list[tuple[str, str]] = []
        """(parameter, header name) of the header parameters."""
        self.resolvers: list[tuple[str, Resolver]] = []
        self._plan(inspect.signature(route.endpoint))

    def _plan(self, signature: inspect.Signature) -> None:
        headers = {field.name: _header_name(field) for field in self.route.dependant.header_params}
        queries = {field.name for field in self.route.dependant.query_params}
        # Parameters are resolved in the order the route declares them: the store before the caller, as there.
        for name, parameter in signature.parameters.items():
            annotation = parameter.annotation if isinstance(parameter.annotation, str) else ""
            if annotation in RESOLVERS:
                self.resolvers.append((name, RESOLVERS[annotation]))
            elif name in headers:
                self.headers.append((name, headers[name]))
            elif name in queries:
                pass  # validated together, as FastAPI does (``handle``)
            elif name in self.route.param_convertors:
                self.path_params.append(name)
            elif self.route.body_field is not None and name == self.route.body_field.name:
                self.body_name = name
                self.body_model = cast(type[pydantic.BaseModel], self.route.body_field.field_info.annotation)
            else:
                raise TypeError(f"{self.route.path}: parameter {name} ({annotation}) cannot be served directly")

    async def handle(self, request: Request) -> Response:
        """Answer one call (a bound method, so Starlette treats it as a request-response endpoint)."""
        request.scope["route"] = self.route  # as FastAPI does: the metrics label calls by route template
        if self.rate_limited:  # as the /api/v2 router's dependency
            ip = await deps.client_ip(request, request.app.state.context)
            await ratelimit.enforce(request, ip, request.headers.get("apikey"))
        arguments: dict[str, Any] = {name: request.path_params[name] for name in self.path_params}
        if self.route.dependant.query_params:
            queries, errors = request_params_to_args(self.route.dependant.query_params, request.query_params)
            if errors:
                raise RequestValidationError(errors)
            arguments.update(queries)
        arguments.update((name, request.headers.get(header)) for name, header in self.headers)
        if self.body_name is not None and self.body_model is not None:
            arguments[self.body_name] = await _parse_body(request, self.body_model)
        async with AsyncExitStack() as stack:
            resolved: dict[str, Any] = {}
            for name, resolve in self.resolvers:
                resolved[name] = await resolve(request, stack, resolved)
            result = await self.endpoint(**arguments, **resolved)
        return self._response(result)

    def _response(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        exclude_none = self.route.response_model_exclude_none
        content = result.model_dump_json(by_alias=True, exclude_none=exclude_none)
        return Response(content, status_code=self.route.status_code or 200, media_type="application/json")


def install_direct_routes(
    app: FastAPI, prefix: str, rate_limited: Sequence[APIRouter], unlimited: Sequence[APIRouter]
) -> None:
    """Put a direct route in front of each of the ``HOT_ROUTES`` found among the routers: ``rate_limited``
    (included in ``app`` under ``prefix`` by the router whose dependency enforces the rate limits) and
    ``unlimited`` (included as they are). The FastAPI routes stay, for the docs."""
    direct: list[Route] = []
    for routers, path_prefix, limited in ((rate_limited, prefix, True), (unlimited, "", False)):
        for router in routers:
            for route in router.routes:
                if not isinstance(route, APIRoute):
                    continue
                for method in route.methods or ():
                    if (method, path_prefix + route.path) in HOT_ROUTES:
                        endpoint = _DirectEndpoint(route, limited)
                        path = path_prefix + route.path
                        direct.append(Route(path, endpoint.handle, methods=[method], name=route.name))
    missing = len(HOT_ROUTES) - len(direct)
    if missing:
        raise RuntimeError(f"{missing} hot route(s) not found among the app's routes")
    app.router.routes[0:0] = direct
