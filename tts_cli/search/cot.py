"""Chain of thought: one greedy path."""

from __future__ import annotations

from .common import Run
from .types import SearchConfig, SearchResult


def cot(problem: str, engine, verifier, config: SearchConfig, on_event=None) -> SearchResult:
    run = Run("cot", problem, engine, None, config, on_event)  # nothing to choose: no verifier
    path = run.start(greedy=True)
    while True:
        node = run.step([path])[0]
        if node.state == "finished":
            break
    run.finish([path])
    return run.result("single")
