"""Answers in OpenAI's shapes: a whole completion, or a stream of chunks.

A stream (server-sent events, `data: {...}`) sends: a first chunk with the assistant role; while
the search runs, progress chunks (an empty delta, the progress in `tts.progress`: step, live
paths, best score so far, and the new and updated tree nodes); then each choice's text, one
content delta per step of its path; a last chunk per choice with its finish_reason and the whole
`tts` field; the usage when `stream_options.include_usage` asks; then `data: [DONE]`. An error
after the stream has started is a `data: {"error": {...}}` event (OpenAI's clients raise it)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator

from ..search import SearchResult
from .choices import Choice, choices_of, tts_field, usage_of
from .errors import APIError
from .progress import TreeMirror, merge
from .requests import SearchPlan
from .schema import (AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChunkChoice, Delta,
                     TextChoice, TextCompletion, Usage, new_id)

PROGRESS_INTERVAL_S = 0.1  # at most ten progress chunks a second per stream (events merged)


class ChatShape:
    """/v1/chat/completions."""

    prefix = "chatcmpl"

    def whole(self, id_: str, model: str, choices: list[Choice], usage: dict, tts: dict) -> dict:
        return ChatCompletion(id=id_, model=model, usage=Usage(**usage), tts=tts, choices=[
            ChatChoice(index=c.index, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason)
            for c in choices]).body()

    def chunk(self, id_: str, created: int, model: str, pieces: list[tuple], *, first: bool = False,
              tts: dict | None = None, usage: dict | None = None) -> dict:
        """pieces: (choice index, text or None, finish_reason or None)."""
        return ChatCompletionChunk(id=id_, created=created, model=model, tts=tts,
                                   usage=Usage(**usage) if usage else None, choices=[
            ChunkChoice(index=i, delta=Delta(role="assistant" if first else None, content=text), finish_reason=fr)
            for i, text, fr in pieces]).body()


class TextShape:
    """/v1/completions."""

    prefix = "cmpl"

    def whole(self, id_: str, model: str, choices: list[Choice], usage: dict, tts: dict) -> dict:
        return TextCompletion(id=id_, model=model, usage=Usage(**usage), tts=tts, choices=[
            TextChoice(index=c.index, text=c.text, finish_reason=c.finish_reason) for c in choices]).body()

    def chunk(self, id_: str, created: int, model: str, pieces: list[tuple], *, first: bool = False,
              tts: dict | None = None, usage: dict | None = None) -> dict:
        return TextCompletion(id=id_, created=created, model=model, tts=tts, usage=Usage(**usage) if usage else None,
                              choices=[TextChoice(index=i, text=text or "", finish_reason=fr)
                                       for i, text, fr in pieces]).body()


def whole(shape, plan: SearchPlan, result: SearchResult) -> dict:
    return shape.whole(new_id(shape.prefix), plan.model, choices_of(result, plan.choices), usage_of(result),
                       tts_field(result, plan.tree))


async def stream(shape, service, ticket, plan: SearchPlan, events: asyncio.Queue,
                 include_usage: bool) -> AsyncIterator[dict]:
    """The stream's server-sent events (sse-starlette sends them). `events` holds the search's
    progress items (progress.ProgressFeed), then None once the search has ended. If the client
    goes away, this generator is cancelled, and so is the search."""
    id_, created, mirror = new_id(shape.prefix), int(time.time()), TreeMirror()

    def event(body: dict) -> dict:
        return {"data": json.dumps(body, separators=(",", ":"))}

    try:
        yield event(shape.chunk(id_, created, plan.model, [(0, "", None)], first=True))
        ended = False
        while not ended:
            batch = [await events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            ended = batch[-1] is None
            progress = [item for item in batch if item is not None]
            if progress:
                for item in progress:
                    mirror.apply(item)
                tts = {"progress": {**mirror.summary(), **merge(progress)}}
                yield event(shape.chunk(id_, created, plan.model, [(0, None, None)], tts=tts))
            if not ended:
                await asyncio.sleep(PROGRESS_INTERVAL_S)
        result = service.finished(ticket, plan)
        choices = choices_of(result, plan.choices)
        for c in choices:
            for step in c.steps:
                yield event(shape.chunk(id_, created, plan.model, [(c.index, step, None)]))
        yield event(shape.chunk(id_, created, plan.model, [(c.index, None, c.finish_reason) for c in choices],
                                tts=tts_field(result, plan.tree)))
        if include_usage:
            yield event(shape.chunk(id_, created, plan.model, [], usage=usage_of(result)))
    except APIError as e:  # the status line has gone: the error is an event
        yield event(e.body())
    finally:
        service.cancel(ticket)  # nothing once the search has ended; a client gone mid-search stops it
    yield {"data": "[DONE]"}
