"""`tts serve`: test-time search behind an OpenAI-compatible HTTP API.

Every request is one search (a scheduler Job); all of them run in the one scheduler, whose
decodes hold the live sequences of every client's search at once.

- settings.py: the server's own flags (address, key, limits) and the loopback rule
- schema.py: the OpenAI request and response bodies (pydantic)
- requests.py: from a request to a search (model aliases, the `tts` options, the limits)
- choices.py: from a SearchResult to OpenAI choices, usage and the `tts` field
- progress.py: what a streamed search reports while it runs (and what `tts solve --server` draws)
- worker.py: the one thread that owns llama.cpp and drives the scheduler
- service.py: what the routes call: submit, wait, cancel, limits, counters
- metrics.py: the counters and the Prometheus text of /metrics
- app.py: the FastAPI app (routes, errors, the key, the body limit)
- server.py: opening the models and running uvicorn until Ctrl-C/SIGTERM
- client.py: `tts solve --server URL` (standard library only)

Only app.py and server.py need the `serve` extra (FastAPI, uvicorn, sse-starlette).
"""

from __future__ import annotations

EXTRA_HINT = "tts serve needs the serve extra: pip install 'tts_cli[serve]'"


def missing_extra() -> str | None:
    """None when FastAPI, uvicorn and sse-starlette can be imported; else the line that says how
    to install them."""
    import importlib.util
    for module in ("fastapi", "uvicorn", "sse_starlette"):
        try:
            if importlib.util.find_spec(module) is None:
                return EXTRA_HINT
        except (ImportError, ValueError):  # a module set to None in sys.modules (tests do that)
            return EXTRA_HINT
    return None
