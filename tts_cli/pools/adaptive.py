"""Early stopping estimated from a pool: majority-adaptive and best-of-n-adaptive at budget n
and a stop threshold, as search/adaptive.py runs them, without sampling again.

A live adaptive run samples its paths in waves of `wave` and, after every wave but the last,
tallies the answers so far and stops when `stop_reason` says so. Its first k paths are k
independent samples; so are the first k of a random order of the pool's N_max candidates. An
order of n candidates drawn at random from the pool is therefore a draw of the live run: walk
its waves, stop where the live rule would, and choose among the candidates sampled by then.
The estimate is the mean over `orders` random orders per problem (seeded by problem id and n,
as estimate.py's subsets are), of
- whether the choice is right (accuracy, with estimate.py's selection and tie rules), and
- the paths and tokens sampled (the saving against all n paths: the same orders, all n).
A rule that never stops gives exactly expected_accuracy at n; one that always stops after the
first wave gives it at `wave`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..search.adaptive import prob_leader_is_mode
from .estimate import Accuracy, _stable_int, selection_credit
from .pool import NO_ANSWER, Pool, PoolError

DEFAULT_ORDERS = 2000


@dataclass
class AdaptiveEstimate:
    """An early-stopping setting at one budget: its accuracy per problem and what it sampled."""

    accuracy: Accuracy
    threshold: float
    wave: int
    paths: np.ndarray  # per problem: expected paths sampled (<= n)
    tokens: np.ndarray  # per problem: expected tokens generated
    full_tokens: np.ndarray  # per problem: expected tokens of all n paths (the same orders)

    @property
    def token_ratio(self) -> float:
        """Tokens generated against sampling all n paths, over the problem set."""
        full = float(np.nansum(self.full_tokens))
        return float(np.nansum(self.tokens)) / full if full else float("nan")

    def as_dict(self) -> dict:
        return {**self.accuracy.as_dict(), "threshold": self.threshold, "wave": self.wave,
                "mean_paths": round(float(self.paths.mean()), 3) if len(self.paths) else None,
                "token_ratio": round(self.token_ratio, 4)}


def adaptive_accuracy(pools: Sequence[Pool], n: int, *, threshold: float, wave: int | None = None,
                      use_verifier: bool = False, selection: str = "vote", aggregation: str | None = None,
                      orders: int = DEFAULT_ORDERS, seed: int = 0) -> AdaptiveEstimate:
    """majority-adaptive (use_verifier False: one vote a path, majority choice) or
    best-of-n-adaptive (each path votes its score; the choice by `selection`, vote or max) at
    budget n with waves of `wave` (None: the live default, max(2, n // 4))."""
    if n < 1:
        raise PoolError(f"budget n must be >= 1, got {n}")
    if orders < 2:
        raise PoolError(f"orders must be >= 2, got {orders}")
    if use_verifier and selection not in ("vote", "max"):
        raise PoolError(f"unknown selection {selection!r}: vote or max")
    wave = wave or max(2, n // 4)
    method = selection if use_verifier else "majority"
    values, paths, tokens, full_tokens, variances = [], [], [], [], []
    for index, pool in enumerate(pools):
        if n > pool.size:
            raise PoolError(f"problem {pool.id}: budget {n} is more than the {pool.size} candidates sampled")
        rng = np.random.default_rng([seed, _stable_int(pool.id if pool.id is not None else index), n, wave])
        order = np.argsort(rng.random((orders, pool.size)), axis=1)[:, :n]  # n of the pool, in random order
        scores = pool.path_scores(aggregation) if use_verifier else None
        sampled = stopping_points(pool, order, n, wave, threshold, scores)
        masks = np.zeros((orders, pool.size), dtype=bool)
        taken = np.arange(n)[None, :] < sampled[:, None]
        np.put_along_axis(masks, order, taken, axis=1)
        credit = selection_credit(pool, masks, method, scores, "first")
        values.append(float(credit.mean()))
        variances.append(float(credit.var(ddof=1) / len(credit)))
        paths.append(float(sampled.mean()))
        per_path = pool.tokens if pool.tokens is not None else np.full(pool.size, np.nan)
        tokens.append(float((masks * per_path[None, :]).sum(axis=1).mean()))
        full_tokens.append(float(per_path[order].sum(axis=1).mean()))
    count = len(values)
    accuracy = Accuracy(method=f"{method}-adaptive", n=n, aggregation=aggregation if use_verifier else None,
                        ties="first", ids=[p.id for p in pools], per_problem=np.array(values, dtype=float),
                        exact=np.zeros(count, dtype=bool),
                        monte_carlo_se=math.sqrt(sum(variances)) / count if count else 0.0, resamples=orders)
    return AdaptiveEstimate(accuracy=accuracy, threshold=threshold, wave=wave, paths=np.array(paths),
                            tokens=np.array(tokens), full_tokens=np.array(full_tokens))


def stopping_points(pool: Pool, order: np.ndarray, n: int, wave: int, threshold: float,
                    scores: np.ndarray | None) -> np.ndarray:
    """Per row of `order` (candidate indices in sampling order), how many paths the live rule
    samples: the first wave boundary k < n (k = wave, 2 wave, ...) where, over the first k
    paths, the leader cannot be overtaken by the n - k left or its posterior share reaches
    `threshold`; n when none is."""
    rows = len(order)
    sampled = np.full(rows, n, dtype=np.int64)
    groups = pool.groups[order]  # rows x n: each sampled path's answer group
    group_count = max(1, len(pool.group_answers))
    votes_per_path = np.ones(order.shape) if scores is None else scores[order]
    votes_per_path = np.where(groups == NO_ANSWER, 0.0, votes_per_path)  # unanswered paths never vote
    safe_groups = np.where(groups == NO_ANSWER, 0, groups)
    for k in range(wave, n, wave):
        open_rows = sampled == n
        if not open_rows.any():
            break
        tally = np.zeros((rows, group_count))
        np.add.at(tally, (np.repeat(np.arange(rows), k), safe_groups[:, :k].reshape(-1)),
                  votes_per_path[:, :k].reshape(-1))
        top = -np.sort(-tally, axis=1)
        lead = top[:, 0]
        runner_up = top[:, 1] if group_count > 1 else np.zeros(rows)
        stop = lead - runner_up > n - k
        # the posterior rule needs a leader (live: no answered path yet, no tally, no stop)
        has_leader = (groups[:, :k] != NO_ANSWER).any(axis=1)
        unsure = open_rows & ~stop & has_leader
        if unsure.any():
            pairs, inverse = np.unique(np.stack([lead[unsure], runner_up[unsure]], axis=1), axis=0,
                                       return_inverse=True)
            posterior = np.atleast_1d(prob_leader_is_mode(pairs[:, 0], pairs[:, 1]))
            stop[np.flatnonzero(unsure)] |= posterior[inverse.reshape(-1)] >= threshold
        sampled[open_rows & stop & has_leader] = k
    return sampled
