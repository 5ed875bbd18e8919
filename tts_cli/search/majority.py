"""Majority vote (self-consistency): N sampled paths; the most frequent answer wins."""

from __future__ import annotations

from .common import Search
from .types import Parallel, SearchConfig


def majority(search: Search, config: SearchConfig):
    run = search.run("majority", config, use_verifier=False)  # votes need no verifier
    paths = run.spread(run.start(), config.n)
    yield Parallel([run.walk(p) for p in paths])  # independent paths: none waits for another
    return run.result("majority")
