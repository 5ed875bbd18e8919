"""tts serve: test-time search behind an OpenAI-compatible HTTP API (tts_cli/serve/)."""

from __future__ import annotations

from contextlib import closing

import typer

from ..cli_options import CONFIG, MODELS, SEARCH, SERVE, STRATEGY, with_options
from ..settings import SettingsError, build_run
from .common import USER_ERRORS, app, err_console, fail, say


@app.command()
@with_options(CONFIG, STRATEGY, SEARCH, MODELS, SERVE)
def serve(**opts):
    """Serve test-time search over an OpenAI-compatible HTTP API (needs the serve extra).

    POST /v1/chat/completions and /v1/completions, GET /v1/models, /health, /metrics. Every
    request is one search, and all of them share one scheduler: each llama_decode holds the live
    paths of every client's search. The search and model flags are the server's defaults; a
    request picks its own search with "tts": {"strategy": ..., "n": ...} in its body, or by a
    model name such as tts-beam-16. Listens on 127.0.0.1 unless --host (which needs --api-key).

    Examples:
      tts serve --strategy majority --n 8 --prompt few-shot
      tts serve --prm confidence --concurrency 8 --port 8000
      TTS_API_KEY=secret tts serve --host 0.0.0.0
    """
    from ..serve import missing_extra
    from ..serve.settings import build_serve
    try:
        settings = build_run(opts["config"], opts)
        limits = build_serve(opts)
        if missing_extra():
            raise SettingsError(missing_extra())
        from ..serve.server import bind, open_service, serve_forever
        with closing(bind(limits)) as sock:
            with err_console.status("loading models..."):
                service = open_service(settings, limits)
            serve_forever(service, sock, say)
    except USER_ERRORS as e:
        fail(str(e))
    except KeyboardInterrupt as e:  # uvicorn shut down first: searches cancelled, engines closed
        from ..engine import Terminated
        say(f"stopped ({'SIGTERM' if isinstance(e, Terminated) else 'Ctrl-C'}): searches cancelled, engines closed")
        raise typer.Exit(143 if isinstance(e, Terminated) else 130)
