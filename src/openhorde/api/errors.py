"""Every error leaves the server as ``{"message", "rc"}``: the one place errors become responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from openhorde.errors import ClientDisconnected, HordeError, ValidationFailed

log = logging.getLogger(__name__)

_HTTP_RCS = {404: "NotFound", 405: "MethodNotAllowed"}


def error_response(exc: HordeError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer for a horde error: its status and ``{"message", "rc"}``; for the pure ASGI middleware too."""
    extra = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return JSONResponse(status_code=exc.status, content=exc.to_body(), headers={**extra, **(headers or {})})


async def _horde_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HordeError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, str] = {}
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        errors[location or "body"] = str(error.get("msg", "invalid"))
    failure = ValidationFailed(errors=errors)
    return JSONResponse(status_code=failure.status, content=failure.to_body())


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    rc = _HTTP_RCS.get(exc.status_code, "HTTPError")
    return JSONResponse(status_code=exc.status_code, content={"message": str(exc.detail), "rc": rc})


async def _client_gone(request: Request, _exc: Exception) -> JSONResponse:
    # The client hung up while sending its body (a worker killed mid-upload): nobody reads this answer, and it is
    # not a server fault, so no traceback and no 500 in the logs.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return await _horde_error(request, ClientDisconnected())


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500,
        content={"message": "Internal server error; it has been logged.", "rc": "InternalServerError"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map our errors, validation errors, HTTP errors, hung-up clients and anything unexpected to ``{message, rc}``."""
    app.add_exception_handler(HordeError, _horde_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)
