"""Best-of-N: N sampled paths, every step scored by the verifier; the answer by PRM-Max (the
best path) or PRM-Vote (the answer whose paths' scores sum highest)."""

from __future__ import annotations

from .common import Search
from .types import Parallel, SearchConfig


def best_of_n(search: Search, config: SearchConfig):
    run = search.run("best_of_n", config)
    paths = run.spread(run.start(), config.n)
    yield Parallel([run.walk(p) for p in paths])  # independent paths, each scored step by step
    return run.result(config.selection)
