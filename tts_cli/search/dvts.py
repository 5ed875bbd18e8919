"""Diverse verifier tree search (DVTS).

The budget N is split into N/M independent subtrees. Each subtree repeats: sample M candidate
next steps from its current path, score them, and continue from the single best. A subtree ends
when its best candidate is finished (or at the step limit). Every finished candidate of every
subtree is a final path; the answer is chosen across all of them. Subtrees never exchange
candidates; all of them step together in one batch.
"""

from __future__ import annotations

from .common import Search
from .types import SearchConfig


def dvts(search: Search, config: SearchConfig):
    run = search.run("dvts", config)
    m = config.beam_width
    subtrees = run.spread(run.start(), config.n // m)  # the current path of each live subtree
    while subtrees:
        groups = [run.spread(p, m) for p in subtrees]  # M candidates per subtree
        nodes = yield from run.step([c for g in groups for c in g])
        yield from run.score(nodes)
        run.forget_scores(sorted({node.parent for node in nodes}))
        subtrees = []
        for group in groups:
            best = max(group, key=run.path_score)
            run.finish([p for p in group if p.node.state == "finished"])
            if best.node.state == "finished":
                run.prune([p for p in group if p.node.state != "finished"], "subtree finished")
            else:
                run.prune([p for p in group if p is not best and p.node.state != "finished"],
                          "not the best of its subtree")
                subtrees.append(best)
    return run.result(config.selection)
