"""Running tts serve: the models opened once (as `tts solve` opens them, sized by --concurrency),
then uvicorn until Ctrl-C or SIGTERM. On either, every search is cancelled at once (its request
answered 503), streams end, and the search thread closes the engines before the process exits."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from ..settings import RunSettings, SettingsError
from ..solver import Session
from .app import create_app
from .service import SearchService
from .settings import ServeSettings

GRACEFUL_SHUTDOWN_S = 10  # connections still open after this are closed


def open_service(settings: RunSettings, limits: ServeSettings) -> SearchService:
    """The policy (and the verifier, when the default strategy scores steps or --prm names one)
    loaded once, sized for --concurrency searches of the default budget."""
    session = Session(settings.models)
    scheduler = session.open([(settings.strategy, settings.search)], limits.concurrency_value(),
                             verifier=settings.models.prm is not None)
    return SearchService(session, scheduler, settings, limits)


class _Server(uvicorn.Server):
    """uvicorn's server, which also cancels the searches as soon as a signal asks it to stop
    (uvicorn would otherwise wait for their requests to end)."""

    def __init__(self, config: uvicorn.Config, service: SearchService):
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig, frame) -> None:
        self.service.stop()
        super().handle_exit(sig, frame)


def bind(limits: ServeSettings) -> socket.socket:
    """The listening address, taken before the models load (a port in use fails at once)."""
    host = limits.host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, limits.port))
    except OSError as e:
        sock.close()
        raise SettingsError(f"--host {limits.host} --port {limits.port}: cannot listen there ({e.strerror or e})")
    sock.set_inheritable(True)
    return sock


def serve_forever(service: SearchService, sock: socket.socket, say) -> None:
    """Listen on `sock` until a signal stops the server. uvicorn raises the signal again once it
    has shut down (KeyboardInterrupt, or engine.Terminated for SIGTERM, in the CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.getLogger("tts_cli.serve").addHandler(handler)
    config = uvicorn.Config(create_app(service), log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    host, port = sock.getsockname()[:2]
    for line in describe(service, f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"):
        say(line)
    _Server(config, service).run(sockets=[sock])


def describe(service: SearchService, url: str) -> list[str]:
    """What the server says when it starts: where, and what it runs."""
    s, d = service.scheduler, service.defaults
    return [f"tts serve: listening on {url}",
            f"policy {service.session.policy_path.name}, verifier {service.planner.verifier or 'none'}; default "
            f"{d.strategy} N={d.search.n}; {s.engine.n_seq_max} sequence slots, up to {s.max_searches} searches at "
            f"once, {service.limits.queue_size} may wait{'; API key required' if service.limits.api_key else ''}",
            "Ctrl-C stops it"]
