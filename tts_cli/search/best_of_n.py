"""Best-of-N: N sampled paths, every step scored by the verifier; the answer by PRM-Max (the
best path) or PRM-Vote (the answer whose paths' scores sum highest)."""

from __future__ import annotations

from .common import Search
from .types import SearchConfig


def best_of_n(search: Search, config: SearchConfig):
    run = search.run("best_of_n", config)
    active = run.spread(run.start(), config.n)
    while active:
        nodes = yield from run.step(active)
        yield from run.score(nodes)
        run.forget_scores([n.parent for n in nodes])  # each path has one child: parents are done
        done = [p for p in active if p.node.state == "finished"]
        run.finish(done)
        active = [p for p in active if p.node.state != "finished"]
    return run.result(config.selection)
