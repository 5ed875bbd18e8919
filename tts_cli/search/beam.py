"""Beam search with a process reward model.

N active paths. Each iteration every active path samples one next step, the verifier scores all
candidates, the top N/M unfinished candidates survive, and each survivor is expanded into M
children for the next iteration. Finished paths leave the active set. The search stops when N
paths have finished, nothing is active, or at the step limit. With lookahead k, a candidate's
score is that of its path after k more greedy steps.
"""

from __future__ import annotations

from ..verifiers.base import StepToScore
from .common import Path, Run, Search
from .types import SearchConfig


def beam(search: Search, config: SearchConfig):
    run = search.run("beam", config)
    n, m = config.n, config.beam_width
    keep = n // m
    active = run.spread(run.start(), n)
    n_finished = 0
    while active:
        nodes = yield from run.step(active)
        yield from run.score(nodes)
        if config.lookahead:
            yield from rescore_with_lookahead(run, [p for p in active if p.node.state != "finished"], config.lookahead)
        run.forget_scores(sorted({node.parent for node in nodes}))  # no path extends them any more

        done = [p for p in active if p.node.state == "finished"]
        run.finish(done)
        n_finished += len(done)
        candidates = [p for p in active if p.node.state != "finished"]
        if n_finished >= n or not candidates:
            run.prune(candidates, "enough paths finished")
            break

        candidates.sort(key=run.path_score, reverse=True)
        survivors, losers = candidates[:keep], candidates[keep:]
        run.prune(losers, f"not in the top {keep} of {len(candidates)}")
        active = run.spread_each(survivors, [m] * len(survivors))
    return run.result(config.selection)


def rescore_with_lookahead(run: Run, paths: list[Path], k: int):
    """Replace each candidate's score by the score of its path after k more greedy steps. The
    rollout is scored as one extra step on top of the candidate and then thrown away."""
    if not paths:
        return
    run.catch_up(paths)  # a rollout forks the path's sequence: it must hold the whole path
    rollouts = [run.engine.fork(p.seq, 1, run.sampling(greedy=True))[0] for p in paths]
    texts = ["" for _ in paths]
    logprobs: list[list[float]] = [[] for _ in paths]
    hidden: list = [None for _ in paths]  # the rollout's state at its end, for a policy head
    live = list(range(len(paths)))
    for _ in range(k):
        steps = yield from run.generate([rollouts[i] for i in live])
        for i, st in zip(list(live), steps):
            texts[i] += st.text
            logprobs[i] += st.logprobs
            hidden[i] = st.hidden
            if st.stop_reason != "stop":
                live.remove(i)
        if not live:
            break
    run.engine.release_all(rollouts)
    temp_ids = [-(i + 1) for i in range(len(paths))]
    items = [StepToScore(key=run.key, node_id=t, parent_id=p.node.id, text=text, logprobs=lp, hidden=h)
             for t, p, text, lp, h in zip(temp_ids, paths, texts, logprobs, hidden) if text]
    scores = dict(zip([it.node_id for it in items], (yield from run.score_items(items))))
    run.forget_scores(temp_ids)
    for t, p in zip(temp_ids, paths):
        if t in scores:
            p.node.score = scores[t]
    run.emit("score", [p.node for p in paths])
