"""Diverse verifier tree search (DVTS).

The budget N is split into N/M independent subtrees. Each subtree repeats: sample M candidate
next steps from its current path, score them, and continue from the single best. A subtree ends
when its best candidate is finished (or at the step limit). Every finished candidate of every
subtree is a final path; the answer is chosen across all of them. Subtrees never exchange
candidates: they run side by side, each at its own pace.
"""

from __future__ import annotations

from .common import Path, Run, Search
from .types import Parallel, SearchConfig


def dvts(search: Search, config: SearchConfig):
    run = search.run("dvts", config)
    roots = run.spread(run.start(), config.n // config.beam_width)
    yield Parallel([subtree(run, p, config.beam_width, i) for i, p in enumerate(roots)])
    return run.result(config.selection)


def subtree(run: Run, path: Path, m: int, branch: int):
    while True:
        group = run.spread(path, m)  # M candidates for the next step
        nodes = yield from run.step(group)
        for node in nodes:
            node.branch = branch
        yield from run.score(nodes)
        run.forget_scores([n for n in {node.parent for node in nodes} if n != 0])
        best = max(group, key=run.path_score)
        run.finish([p for p in group if p.node.state == "finished"])
        if best.node.state == "finished":
            run.prune([p for p in group if p.node.state != "finished"], "subtree finished")
            run.done_with_slots(m)
            return
        run.prune([p for p in group if p is not best and p.node.state != "finished"], "not the best of its subtree")
        path = best
