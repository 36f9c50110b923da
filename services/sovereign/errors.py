"""Errors sovereign answers with, all rendered in OpenAI's error shape.

SovereignError                 any error with an HTTP status and an OpenAI error body
 ├── AuthError                 401: missing or wrong key
 ├── BadRequest                400: a request sovereign cannot serve
 ├── ModelNotFound             404: no backend has the model (or Ollama has not pulled it)
 └── UpstreamError             502: the backend failed, answered garbage or an error
      ├── UpstreamUnreachable  502: connection refused
      ├── UpstreamDisconnected 503: the backend dropped the connection mid-request (it died)
      ├── UpstreamStatusError  the backend's own 4xx and 503 passed through, 502 for other 5xx
      └── UpstreamTimeout      504: connect, first-token, idle or response timeout
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "BadRequest",
    "ModelNotFound",
    "SovereignError",
    "UpstreamDisconnected",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "error_body",
]


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class SovereignError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    param: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


class AuthError(SovereignError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class BadRequest(SovereignError):
    status = 400
    type = "invalid_request_error"


class ModelNotFound(SovereignError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    param = "model"


class UpstreamError(SovereignError):
    status = 502
    code = "upstream_error"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamDisconnected(UpstreamError):
    """The connection broke mid-request: reset, or closed before the answer was whole.

    That is what a model process that crashes looks like from here; 503 says "retry later",
    which is also what OpenAI's SDK does with it.
    """

    status = 503
    code = "upstream_disconnected"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamStatusError(UpstreamError):
    """The backend answered with an HTTP error.

    Its 4xx (bad request, context too long, rate limit) are the client's business and keep
    their status, as does its 503 (a model still loading: retry later); its other 5xx, and
    401/403 (our backend credentials, not the client's), are 502.
    """

    def __init__(self, upstream_status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.upstream_status = upstream_status
        if 400 <= upstream_status < 500 and upstream_status not in (401, 403):
            self.status = upstream_status
            self.type = "invalid_request_error"
        elif upstream_status == 503:
            self.status = 503
