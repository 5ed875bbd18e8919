"""`tts solve --server URL`: a problem solved by a `tts serve` server, shown as a local solve is.

The request asks for a stream. Its progress chunks are fed into a TreeMirror and handed, as
search Events, to the same on_event handler (live.LiveView) a local solve uses; the last chunk's
`tts` field becomes the SearchResult the CLI prints (panel, --tree, --json). Standard library
only: the serve extra is not needed on the client."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Iterator

from ..search import Candidate, Event, Node, SearchResult
from ..settings import MODEL_KEYS, SEARCH_KEYS, RunSettings, SettingsError, read_recipe
from .errors import ServerError
from .progress import TreeMirror
from .settings import API_KEY_ENV

READ_TIMEOUT_S = 120  # between two reads; the server pings a quiet stream every 15 s


def remote_solver(url: str, opts: dict):
    """A function (settings, text, on_event=None) -> SearchResult, as solver.solve_text, that
    solves on the server at `url`. The request carries the strategy and search settings this
    command was given (flags, --config recipe); the server's defaults stand for the rest."""
    recipe, _ = read_recipe(opts.get("config"))
    given = {k for k, v in opts.items() if v is not None} | set(recipe)
    for key in MODEL_KEYS:
        if key in given and key not in ("policy", "prm"):
            raise SettingsError(f"--{key.replace('_', '-')}: with --server the server's engines are used; "
                                "set it on tts serve")

    def solve(settings: RunSettings, text: str, on_event=None) -> SearchResult:
        options = {k: getattr(settings.search, k) for k in SEARCH_KEYS if k in given}
        options.update({"strategy": settings.strategy} if "strategy" in given else {})
        options.update({"prm": settings.models.prm} if "prm" in given else {})
        model = settings.models.policy if "policy" in given else "tts"
        return solve_remote(url, model, {**options, "tree": True}, text, on_event)
    return solve


def solve_remote(url: str, model: str, options: dict, text: str, on_event=None) -> SearchResult:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": True, "tts": options}
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if os.environ.get(API_KEY_ENV):
        headers["Authorization"] = f"Bearer {os.environ[API_KEY_ENV]}"
    request = urllib.request.Request(endpoint(url), data=json.dumps(body).encode(), headers=headers, method="POST")
    mirror, final = TreeMirror(), None
    try:
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as response:
            for data in sse_data(response):
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise ServerError(f"{url}: {chunk['error'].get('message')}")
                tts = chunk.get("tts") or {}
                if "progress" in tts:
                    mirror.apply(tts["progress"])
                    if on_event is not None:
                        nodes = [Node(**{k: n[k] for k in Node.__dataclass_fields__}) for n in tts["progress"]["nodes"]]
                        on_event(Event(kind=(tts["progress"]["events"] or ["expand"])[-1], nodes=nodes,
                                       tree=mirror.tree()))
                elif "answer" in tts:
                    final = tts
    except urllib.error.HTTPError as e:
        raise ServerError(f"{url} answered {e.code}: {error_message(e)}")
    except (urllib.error.URLError, OSError) as e:
        raise ServerError(f"cannot reach {url}: {getattr(e, 'reason', None) or e}")
    except json.JSONDecodeError:
        raise ServerError(f"{url}: not a tts serve stream (a chunk is not JSON)")
    if final is None:
        raise ServerError(f"{url}: the stream ended without a result")
    return result_from(final, text)


def endpoint(url: str) -> str:
    """The chat completions URL of a server given as http://HOST:PORT, with or without /v1."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SettingsError(f"--server: expected an http:// or https:// URL, got {url!r}")
    return (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"


def sse_data(response) -> Iterator[str]:
    """The data of each server-sent event (comment lines, the server's pings, skipped)."""
    data: list[str] = []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def error_message(e: urllib.error.HTTPError) -> str:
    try:
        return json.loads(e.read())["error"]["message"]
    except (ValueError, KeyError, TypeError, OSError):
        return e.reason or "error"


def result_from(tts: dict, problem: str) -> SearchResult:
    """A response's `tts` field as the SearchResult a local search returns."""
    candidates = [Candidate(**{k: c[k] for k in Candidate.__dataclass_fields__ if k in c}) for c in tts.get("candidates", [])]
    tree = [Node(**{k: n[k] for k in Node.__dataclass_fields__}) for n in tts.get("tree", [])]
    return SearchResult(problem=problem, strategy=tts["strategy"], config=tts.get("config", {}), answer=tts["answer"],
                        candidates=candidates, tree=tree, votes=tts.get("votes", {}), compute=tts.get("compute", {}),
                        verifier=tts.get("verifier"), notes=tts.get("notes", []), auto=tts.get("auto"),
                        saved=tts.get("saved"))
