"""Majority vote (self-consistency): N sampled paths; the most frequent answer wins."""

from __future__ import annotations

from .common import Search
from .types import SearchConfig


def majority(search: Search, config: SearchConfig):
    run = search.run("majority", config, use_verifier=False)  # votes need no verifier
    active = run.spread(run.start(), config.n)
    while active:
        yield from run.step(active)
        done = [p for p in active if p.node.state == "finished"]
        run.finish(done)
        active = [p for p in active if p.node.state != "finished"]
    return run.result("majority")
