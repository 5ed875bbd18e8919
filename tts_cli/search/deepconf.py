"""DeepConf, online (Fu et al. 2025, "Deep Think with Confidence"): self-consistency that stops
the paths the policy itself is unsure of, and weighs the votes of the others by their confidence.

Confidence is read from the policy's own token log-probabilities; no verifier is needed. The
paper averages the log-probabilities of the top-k candidate tokens; the engine returns only the
sampled token's, so a window's group confidence here is exp(mean log-prob of its tokens), the
geometric-mean token probability (what the `confidence` verifier gives a step). A path's
confidence is its lowest group confidence over sliding windows of `confidence_window` tokens
(the mean over the whole path when it is shorter than a window).

1. Warm-up: `warmup` paths run to their end; the threshold is the `confidence_percentile`
   percentile of their confidences (10: about 90% of paths pass, the paper's DeepConf-high;
   90: about 10%, DeepConf-low).
2. The other N - warmup paths run side by side, and a path is stopped (pruned, the reason says
   why) once a window's confidence falls below the threshold. The engine generates a step at a
   time, so the check runs at step boundaries, over every window that ends in the new step: a
   path is stopped at the end of the step in which it fell below, not at that token.
3. Vote: finished paths whose confidence reaches the threshold (warm-up paths included) vote
   with their confidence as weight; if none has an answer, plain majority over all of them.
   Each candidate's score is its confidence; `votes` holds the weighted vote.
"""

from __future__ import annotations

import math
from itertools import accumulate

import numpy as np

from .common import Path, Run, Search, choose_answer, group_answers
from .types import Node, Parallel, SearchConfig


def deepconf(search: Search, config: SearchConfig):
    run = search.run("deepconf", config, use_verifier=False)
    window = config.confidence_window
    n_warmup = min(config.warmup or max(2, config.n // 4), config.n)
    rest = config.n - n_warmup
    root = run.start()
    # the root stays to fork the later paths from, when there are any
    warmup = run.fork(root, n_warmup) if rest else run.spread(root, n_warmup)
    yield Parallel([run.walk(p) for p in warmup])
    threshold = float(np.percentile([path_confidence(run, node, window) for node in run.finished],
                                    config.confidence_percentile))
    stopped: list[Node] = []
    if rest:
        yield Parallel([watched(run, p, threshold, window, stopped) for p in run.spread(root, rest)])

    result = run.result("majority")
    for c in result.candidates:
        c.score = path_confidence(run, run.tree[c.node_id], window)
    kept = [c for c in result.candidates if c.score >= threshold and c.answer is not None]
    if kept:
        result.votes = group_answers(kept)  # each answer's summed confidence is its "score"
        result.answer = choose_answer(kept, result.votes, "vote")
        result.notes.append(f"confidence-weighted vote of {len(kept)} of {len(result.candidates)} finished "
                            f"paths (threshold {threshold:.3f})")
    else:
        result.notes.append(f"no finished path with an answer reached the confidence threshold "
                            f"{threshold:.3f}: plain majority vote")
    result.saved = run.saved(stopped=stopped)
    return result


def watched(run: Run, path: Path, threshold: float, window: int, stopped: list[Node]):
    """Step one path to its end, or stop it at the first step in which a window's confidence
    falls below the threshold."""
    logprobs: list[float] = []
    while path.node.state != "finished":
        node = (yield from run.step([path]))[0]
        new_from = len(logprobs)
        logprobs += finite(run.logprobs[node.id])
        lows = window_confidences(logprobs, window, first_end=new_from)
        if node.state != "finished" and lows and min(lows) < threshold:
            run.prune([path], f"confidence {min(lows):.3f} fell below the warm-up threshold {threshold:.3f}")
            stopped.append(node)
            run.done_with_slots(1)
            return
    run.finish([path])
    run.done_with_slots(1)


def path_confidence(run: Run, node: Node, window: int) -> float:
    """The path's lowest window confidence; its mean confidence when shorter than a window."""
    logprobs = finite([lp for n in run.path_nodes(node) for lp in run.logprobs.get(n.id, [])])
    if not logprobs:
        return 0.0
    return min(window_confidences(logprobs, window) or [math.exp(sum(logprobs) / len(logprobs))])


def window_confidences(logprobs: list[float], window: int, first_end: int = 0) -> list[float]:
    """exp(mean log-prob) of every `window` consecutive tokens whose last token is at index
    first_end or later (none while fewer than `window` tokens exist)."""
    prefix = list(accumulate(logprobs, initial=0.0))
    return [math.exp((prefix[end + 1] - prefix[end + 1 - window]) / window)
            for end in range(max(first_end, window - 1), len(logprobs))]


def finite(logprobs: list[float]) -> list[float]:
    return [lp for lp in logprobs if math.isfinite(lp)]  # nan (the engine could not tell) would spoil every mean
