"""Majority vote (self-consistency): N sampled paths; the most frequent answer wins."""

from __future__ import annotations

from .common import Run
from .types import SearchConfig, SearchResult


def majority(problem: str, engine, verifier, config: SearchConfig, on_event=None) -> SearchResult:
    run = Run("majority", problem, engine, None, config, on_event)  # votes need no verifier
    active = run.spread(run.start(), config.n)
    while active:
        run.step(active)
        done = [p for p in active if p.node.state == "finished"]
        run.finish(done)
        active = [p for p in active if p.node.state != "finished"]
    return run.result("majority")
