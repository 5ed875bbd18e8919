"""The HTTP face of tts serve: a FastAPI app whose routes call a SearchService.

    POST /v1/chat/completions, POST /v1/completions  (OpenAI's, plus the `tts` field)
    GET  /v1/models   the policy's names and the tts-STRATEGY[-N] aliases
    GET  /health      status, searches in flight and queued, live sequences
    GET  /metrics     Prometheus text

Two pure-ASGI middlewares sit in front (pure ASGI: they neither buffer streams nor hide a
client's disconnect from the routes): `Guard` checks the API key and the body size before any
route runs; `RequestLog` counts requests by route and status and times the completions.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import APIError
from .progress import ProgressFeed
from .responses import ChatShape, TextShape, stream, whole
from .schema import ChatRequest, CompletionRequest, ModelCard, ModelList
from .service import ClientGone, SearchService

log = logging.getLogger("tts_cli.serve")
COMPLETION_ROUTES = ("/v1/chat/completions", "/v1/completions")
STREAM_SHUTDOWN_GRACE_S = 5


def create_app(service: SearchService) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:  # uvicorn is stopping: searches cancelled, engines closed on the search thread
            await asyncio.to_thread(service.close)

    app = FastAPI(title="tts serve", summary="Test-time search behind an OpenAI-compatible API", lifespan=lifespan)
    add_error_handlers(app)
    # the last added runs first: requests turned away by the Guard are counted too
    app.add_middleware(Guard, api_key=service.limits.api_key, max_body=service.limits.max_body_bytes)
    app.add_middleware(RequestLog, service=service)
    created = int(time.time())

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request):
        return await complete(service, ChatShape(), service.planner.chat(body), body, request)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await complete(service, TextShape(), service.planner.completion(body), body, request)

    @app.get("/v1/models")
    async def models():
        return ModelList(data=[ModelCard(id=name, created=created, tts=search)
                               for name, search in service.planner.model_names()]).model_dump(mode="json")

    @app.get("/health")
    async def health():
        out = await service.health()
        return JSONResponse(out, status_code=200 if out["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics():
        text = await service.metrics_text()
        if text is None:
            raise APIError(503, "the search thread has stopped", code="server_unavailable")
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


async def complete(service: SearchService, shape, plan, body, request: Request):
    """One completion request: its search submitted, then the whole answer or a stream."""
    if body.stream:
        events: asyncio.Queue = asyncio.Queue()
        ticket = service.submit(plan, on_event=ProgressFeed(asyncio.get_running_loop(), events))
        ticket.outcome.add_done_callback(lambda _: events.put_nowait(None))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        # On shutdown sse-starlette would cut the stream at once; the grace lets it end with the
        # error event its cancelled search gives (the search thread answers within a step).
        return EventSourceResponse(stream(shape, service, ticket, plan, events, include_usage), sep="\n",
                                   shutdown_grace_period=STREAM_SHUTDOWN_GRACE_S)
    ticket = service.submit(plan)
    try:
        result = await service.result(ticket, plan, request.is_disconnected)
    except ClientGone:
        return JSONResponse({}, status_code=499)  # nobody reads it; logged as the client closing
    return whole(shape, plan, result)


# --- errors in OpenAI's format ---------------------------------------------------------------------

def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request, e: APIError):
        return error_response(e)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request, e: RequestValidationError):
        """A body that is not JSON, or misses a field, or has one of the wrong type: 400 naming it."""
        first = e.errors()[0]
        loc = [x for x in first.get("loc", ()) if x != "body"]
        param = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc).lstrip(".") or None
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            message, param = f"the body is not valid JSON ({first.get('ctx', {}).get('error', message)})", None
        return error_response(APIError(400, f"{param}: {message}" if param else message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e: StarletteHTTPException):  # unknown routes, wrong methods
        return error_response(APIError(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def bug(request, e: Exception):
        # Starlette raises the exception again after this answer, and uvicorn logs its traceback
        log.error("internal error on %s (a bug in tts_cli, please report it)", request.url.path)
        return error_response(APIError(500, f"internal error ({type(e).__name__}); the server's log has the traceback"))


# --- middleware ----------------------------------------------------------------------------------

async def _send_error(send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Before any route: the API key (when the server has one, every request needs
    `Authorization: Bearer KEY`), then the body, read whole up to `max_body` bytes (413 past it)
    and handed on to the route; later receive() calls reach the client (its disconnect)."""

    def __init__(self, app, api_key: str | None, max_body: int):
        self.app, self.api_key, self.max_body = app, api_key, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.api_key is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return await _send_error(send, APIError(
                    401, "missing or wrong API key: send `Authorization: Bearer KEY`", code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"}))
        too_big = APIError(413, f"the request body is larger than this server takes ({self.max_body} bytes, "
                                "--max-body-bytes)", code="request_too_large")
        if int(headers.get("content-length", "0") or 0) > self.max_body:
            return await _send_error(send, too_big)
        body, more = b"", scope["method"] in ("POST", "PUT", "PATCH")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await _send_error(send, too_big)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestLog:
    """Counts requests by route and status, and times completion requests to their last byte
    (a stream's too)."""

    def __init__(self, app, service: SearchService):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route, start, status = scope["path"], time.perf_counter(), [500]

        async def watch(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            known = route if route in COMPLETION_ROUTES or route in ("/v1/models", "/health", "/metrics") else "other"
            timed = route in COMPLETION_ROUTES and status[0] == 200
            self.service.metrics.request_done(known, status[0], time.perf_counter() - start if timed else None)
