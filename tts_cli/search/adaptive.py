"""Adaptive consistency (Aggarwal et al. 2023, "Let's Sample Step by Step: Adaptive-Consistency
for Efficient Reasoning"): majority vote or Best-of-N that stops sampling once more paths would
not change the answer.

Paths are sampled in waves of `wave` paths that run side by side. After each wave the answers so
far are tallied (majority-adaptive: one vote per path; best-of-n-adaptive: each path votes with
its verifier score, as in PRM-Vote) and sampling stops when
- the leader cannot be overtaken: its lead over the runner-up is larger than the votes the paths
  left in the budget could bring (at most one each: scores are in [0, 1]); or
- the posterior probability that the leader is the most likely answer reaches `stop_threshold`.
  This is the paper's Beta criterion, which looks at the top two answers only: with v1 and v2
  their votes and a uniform prior, the leader's share of the two is p ~ Beta(v1 + 1, v2 + 1),
  and sampling stops when P(p > 1/2) >= threshold (4 agreeing votes give 0.97).
Never more than N paths. The answer is chosen over the sampled paths as majority or best-of-n
choose it; best-of-n-adaptive's stopping rule looks at the PRM-Vote tally even with PRM-Max.
The slots of the paths never sampled are given back to the scheduler when sampling stops.
"""

from __future__ import annotations

import math

import numpy as np

from .common import Search, group_answers
from .types import Parallel, SearchConfig


def majority_adaptive(search: Search, config: SearchConfig):
    return (yield from adaptive(search, config, "majority_adaptive", use_verifier=False))


def best_of_n_adaptive(search: Search, config: SearchConfig):
    return (yield from adaptive(search, config, "best_of_n_adaptive", use_verifier=True))


def adaptive(search: Search, config: SearchConfig, name: str, use_verifier: bool):
    run = search.run(name, config, use_verifier=use_verifier)
    wave = config.wave or max(2, config.n // 4)
    root = run.start()
    sampled, reason = 0, None
    while sampled < config.n and reason is None:
        k = min(wave, config.n - sampled)
        last = sampled + k == config.n
        # the root stays to fork the next wave from; the last wave uses it as one of its paths
        paths = run.spread(root, k) if last else run.fork(root, k)
        yield Parallel([run.walk(p) for p in paths])
        sampled += k
        if not last:
            votes = [g["score"] if use_verifier else g["count"] for g in group_answers(run.candidates()).values()]
            reason = stop_reason(sorted(votes, reverse=True), config.n - sampled, config.stop_threshold)
    if reason is not None:
        run.release([root])
        run.done_with_slots(config.n - sampled)  # paths that will never be sampled
    result = run.result(config.selection if use_verifier else "majority")
    if reason is not None:
        result.notes.append(f"stopped after {sampled} of {config.n} paths: {reason}")
    result.saved = run.saved(paths_not_sampled=config.n - sampled)
    return result


def stop_reason(votes: list[float], paths_left: int, threshold: float) -> str | None:
    """Why sampling can stop now (None: it cannot). votes: each answer's votes, largest first."""
    if not votes:
        return None
    lead, runner_up = votes[0], (votes[1] if len(votes) > 1 else 0.0)
    if lead - runner_up > paths_left:
        return f"the leader cannot be overtaken by the {paths_left} paths left"
    p = prob_leader_is_mode(lead, runner_up)
    if p >= threshold:
        return f"P(the leader is the most likely answer) = {p:.3f} >= {threshold}"
    return None


def prob_leader_is_mode(v1, v2, points: int = 1000):
    """P(p > 1/2) for p ~ Beta(v1 + 1, v2 + 1). Votes may be fractional (verifier scores), so
    the density is integrated over (1/2, 1) by the midpoint rule; both exponents are >= 0, so
    the density is smooth there and a thousand points are plenty for a stopping rule.
    Numbers give a float; arrays (pools.adaptive asks for thousands of orders at once) an array."""
    a = np.asarray(v1, dtype=float) + 1.0
    b = np.asarray(v2, dtype=float) + 1.0
    lgamma = np.vectorize(math.lgamma, otypes=[float])
    log_norm = lgamma(a + b) - lgamma(a) - lgamma(b)
    width = 0.5 / points
    x = 0.5 + (np.arange(points) + 0.5) * width
    log_density = log_norm[..., None] + (a[..., None] - 1) * np.log(x) + (b[..., None] - 1) * np.log1p(-x)
    p = np.exp(log_density).sum(axis=-1) * width
    return float(p) if p.ndim == 0 else p
