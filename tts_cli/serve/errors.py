"""Errors of tts serve, in OpenAI's format: `{"error": {"message", "type", "param", "code"}}`.

A request's own fault is a 4xx naming the field (param) and what is wrong; 500 is kept for bugs
in tts, which the server logs with their traceback."""

from __future__ import annotations

from ..engine import EngineError
from ..engine.chat import ChatTemplateError
from ..profile import ProfileError
from ..search import ConfigError
from ..settings import SettingsError

# A search that fails with one of these failed because of what the request asked (a prompt
# longer than a path's context, an impossible combination of options): a 400, not a bug.
REQUEST_FAULTS = (ConfigError, EngineError, ChatTemplateError, ProfileError, SettingsError)

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
          413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class APIError(Exception):
    """A request answered with an error status (the routes raise it; app.py writes it)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


class SearchCancelled(Exception):
    """The request's search was cancelled (its client went away)."""


class ServerStopping(Exception):
    """The server is shutting down: searches in flight are cancelled."""


class ServerError(Exception):
    """`tts solve --server`: the server could not be reached, or answered with an error (one
    line, exit code 2)."""
