"""OpenAI-shaped errors: one exception type per HTTP status, rendered as ``{"error": {...}}``.

APIError
├── InvalidRequest      400 invalid_request_error
├── Unauthorized        401 authentication_error (type invalid_request_error, as OpenAI)
├── NotFound            404 invalid_request_error
├── Conflict            409 invalid_request_error
├── UpstreamError       502 / 504 server_error
└── ServiceUnavailable  503 server_error
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


class InvalidRequest(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class Unauthorized(APIError):
    status_code = 401
    error_type = "invalid_request_error"


class NotFound(APIError):
    status_code = 404
    error_type = "invalid_request_error"


class Conflict(APIError):
    status_code = 409
    error_type = "invalid_request_error"


class UpstreamError(APIError):
    status_code = 502
    error_type = "server_error"


class ServiceUnavailable(APIError):
    status_code = 503
    error_type = "server_error"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """The body of every failure, as OpenAI sends it."""

    error: ErrorDetail


# What /openapi.json lists for every /v1 operation (FastAPI's default 422 is never sent).
ERROR_STATUSES = {
    "400": "Invalid request: the message names the parameter in `param`.",
    "401": "Missing or wrong API key.",
    "404": "No such object.",
    "413": "The request body is larger than the endpoint accepts.",
    "503": "The database is unreachable, unusable (a storage fault) or behind the migration head.",
}


def not_found(kind: str, object_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"No {kind} found with id '{object_id}'.", param=param, code="not_found")


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


# What pydantic names a union's branches in ``loc`` (labels, not fields).
UNION_LABELS = {"str", "constrained-str", "list[...]"}


def _param_of(loc: tuple[Any, ...], body: Any = None) -> str | None:
    """("body", "messages", 0, "content") -> "messages[0].content"; the root goes.

    Pydantic puts union branch labels in ``loc`` ("str", "list[...]", and for a
    discriminated union the tag, e.g. content[0] -> "image_url" -> image_url.url). Labels
    are dropped; a tag is the ``type`` of the object being walked, right after a list
    index or a "tagged-union[...]" label (elsewhere a field may share its type's name).
    """
    name = ""
    node = body
    may_be_tag = False
    for part in loc[1:]:
        if isinstance(part, int):
            name += f"[{part}]"
            node = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
            may_be_tag = True
            continue
        if part in UNION_LABELS or "[" in part or part.startswith("tagged-union"):
            may_be_tag = may_be_tag or part.startswith("tagged-union")
            continue
        if may_be_tag and isinstance(node, dict) and node.get("type") == part:
            may_be_tag = False
            continue
        name += f".{part}" if name else part
        node = node.get(part) if isinstance(node, dict) else None
        may_be_tag = False
    return name or None


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


def _most_specific(errors: Sequence[Any]) -> Any:
    """The error worth reporting about the first invalid field.

    A union (content: a string or a list of parts) fails once per branch; "should be a
    valid string" says nothing useful about a list whose third part lacks its url, so
    branch type mismatches give way to the deepest error in the branch the input took.
    """
    field = tuple(errors[0]["loc"][:2])
    same_field = [e for e in errors if tuple(e["loc"][:2]) == field]
    informative = [e for e in same_field if not e["type"].endswith("_type")] or same_field
    return max(informative, key=lambda e: len(e["loc"]))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = _most_specific(errors) if errors else {"loc": (), "msg": "Invalid request."}
    loc = tuple(first.get("loc", ()))
    param = _param_of(loc, exc.body if loc[:1] == ("body",) else None)
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error")
        message = "We could not parse the JSON body of your request" + (
            f": {reason}." if reason else "."
        )
        param = None
    elif first.get("type") == "missing" and len(loc) <= 1:
        message = "The request body is required."
    elif param is None:
        # The body as a whole: not an object, or not sent as JSON at all.
        message = (
            "The request body must be a JSON object, sent with 'Content-Type: application/json'."
        )
    elif first.get("type") == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    else:
        message = f"Invalid '{param}': {first.get('msg', 'invalid value')}."
        if first.get("type") == "missing":
            message = f"Missing required parameter: '{param}'."
    return JSONResponse(error_body(message, "invalid_request_error", param, None), status_code=400)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = "Invalid URL: no such endpoint."
    elif exc.status_code == 405:
        message = "Method not allowed for this endpoint."
    else:
        message = str(exc.detail)
    kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
    code = getattr(exc, "code", None)  # set by the request limits (api/limits.py)
    return JSONResponse(
        error_body(message, kind, code=code), status_code=exc.status_code, headers=exc.headers
    )


def unstorable(exc: DataError) -> InvalidRequest:
    """The database refused a value the request carried (a NUL in an id on PostgreSQL):
    the client's input is at fault, not the server."""
    log.info("database refused a request value: %s", exc)
    return InvalidRequest(
        "The request contains a value the database cannot store (such as a NUL character)."
    )


async def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    error = unstorable(exc)
    return JSONResponse(error.body(), status_code=error.status_code)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("The server had an error while processing your request.", "server_error"),
        status_code=500,
    )


def _document_errors(app: FastAPI) -> None:
    """Make /openapi.json tell the truth about failures: OpenAI's shape, never a 422."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = default_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components["ErrorResponse"] = error_schema
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        schema["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if path.startswith("/v1/"):
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
                    for status, description in ERROR_STATUSES.items():
                        responses.setdefault(
                            status,
                            {
                                "description": description,
                                "content": {"application/json": {"schema": ref}},
                            },
                        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    _document_errors(app)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
