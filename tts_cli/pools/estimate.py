"""Expected accuracy at budget n from pools of N_max candidates.

A run at budget n samples n independent paths; so does drawing n of a pool's N_max paths
uniformly without replacement. The expected accuracy of a selection rule at n on one problem is
therefore the mean, over the C(N_max, n) subsets of the pool, of whether the rule picks a right
answer from the subset; the estimate for a problem set is the mean over its problems.

- pass (pass@n, any right candidate): exact, 1 - C(N - c, n) / C(N, n) with c right candidates
  among N.
- majority, vote (PRM-Vote), max (PRM-Max): every subset when C(N, n) <= exact_limit (n = N is a
  single subset: deterministic); else `resamples` random subsets from a generator seeded by
  (seed, problem id, n). The same n draws the same subsets for every method, so differences
  between methods carry little Monte Carlo noise (common random numbers).

Monte Carlo error: a problem's credit per subset lies in [0, 1], so its estimate has standard
error at most 0.5 / sqrt(resamples) (0.011 at the default 2000), and the mean over P problems at
most 0.5 / sqrt(resamples * P). The between-problem standard error of the same mean is sd / sqrt(P)
with sd the spread of per-problem accuracies (0.3-0.5 on real problem sets), so the Monte Carlo
variance is at most (0.011 / sd)^2 of the between-problem variance that the intervals measure:
under 0.2% for sd >= 0.25. Each Accuracy reports its own measured Monte Carlo standard error.

Ties, as `search.common.choose_answer` breaks them: majority: the largest count; vote: the
largest score sum, then the largest count; max: the highest path score. Left tied:
- ties="first" (default): the answer seen first, in the order the candidates are recorded (the
  order they finished in, which a subset keeps). At n = N_max this is exactly the live search's
  pick on the same candidates.
- ties="expected": each tied answer (max: each tied path) equally likely, i.e. the mean over all
  orders of the candidates: credit = share of the tied ones that are right. Smoother, but it
  drops a real effect: the live search's "first" is the path that finished first, usually the
  shortest, and that is not a coin flip.
Score sums within 1e-9 (relative) of each other count as tied: float sums in another order can
differ in the last bit, and the live search's exact comparison is arbitrary there anyway.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .pool import NO_ANSWER, Pool, PoolError

METHODS = ("majority", "vote", "max", "pass")
TIES = ("first", "expected")
SCORED = ("vote", "max")
DEFAULT_RESAMPLES = 2000
DEFAULT_EXACT_LIMIT = 5000  # enumerate every subset up to this many
VOTE_TIE_TOLERANCE = 1e-9


@dataclass
class Accuracy:
    """Expected accuracy of one selection at one budget, per problem and overall."""

    method: str
    n: int
    aggregation: str | None
    ties: str
    ids: list
    per_problem: np.ndarray  # expected accuracy of each problem, in [0, 1]
    exact: np.ndarray  # per problem: computed exactly (True) or by Monte Carlo
    monte_carlo_se: float  # standard error of `mean` from Monte Carlo alone (0.0 when all exact)
    resamples: int

    @property
    def mean(self) -> float:
        return float(self.per_problem.mean()) if len(self.per_problem) else float("nan")

    def by_id(self) -> dict:
        """Problem id -> expected accuracy: the input of the choice rule."""
        return {pid: float(v) for pid, v in zip(self.ids, self.per_problem)}

    def as_dict(self) -> dict:
        return {"method": self.method, "n": self.n, "aggregation": self.aggregation, "ties": self.ties,
                "problems": len(self.ids), "accuracy": round(self.mean, 4),
                "exact_problems": int(self.exact.sum()), "monte_carlo_se": round(self.monte_carlo_se, 6),
                "resamples": self.resamples}


def expected_accuracy(pools: Sequence[Pool], method: str, n: int, *, aggregation: str | None = None,
                      ties: str = "first", seed: int = 0, resamples: int = DEFAULT_RESAMPLES,
                      exact_limit: int = DEFAULT_EXACT_LIMIT) -> Accuracy:
    """The expected accuracy of `method` (majority, vote, max, pass) when n of each pool's
    candidates are drawn at random without replacement; aggregation (last, min, avg, prod) turns
    step scores into path scores for vote and max (None: the run's own)."""
    if method not in METHODS:
        raise PoolError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    if ties not in TIES:
        raise PoolError(f"unknown tie rule {ties!r}: one of {', '.join(TIES)}")
    if n < 1:
        raise PoolError(f"budget n must be >= 1, got {n}")
    if resamples < 2:
        raise PoolError(f"resamples must be >= 2, got {resamples}")
    values, exact, variances = [], [], []
    for index, pool in enumerate(pools):
        if n > pool.size:
            raise PoolError(f"problem {pool.id}: budget {n} is more than the {pool.size} candidates sampled")
        value, variance, is_exact = problem_accuracy(
            pool, method, n, aggregation=aggregation, ties=ties, resamples=resamples, exact_limit=exact_limit,
            rng=np.random.default_rng([seed, _stable_int(pool.id if pool.id is not None else index), n]))
        values.append(value)
        exact.append(is_exact)
        variances.append(variance)
    count = len(values)
    return Accuracy(method=method, n=n, aggregation=aggregation if method in SCORED else None, ties=ties,
                    ids=[p.id for p in pools], per_problem=np.array(values, dtype=float),
                    exact=np.array(exact, dtype=bool),
                    monte_carlo_se=math.sqrt(sum(variances)) / count if count else 0.0, resamples=resamples)


def problem_accuracy(pool: Pool, method: str, n: int, *, aggregation: str | None = None, ties: str = "first",
                     resamples: int = DEFAULT_RESAMPLES, exact_limit: int = DEFAULT_EXACT_LIMIT,
                     rng: np.random.Generator | None = None) -> tuple[float, float, bool]:
    """One problem: (expected accuracy, its Monte Carlo variance (0 when exact), exact?)."""
    size = pool.size
    if method == "pass":
        right = int(pool.candidate_correct.sum())
        return 1.0 - math.comb(size - right, n) / math.comb(size, n), 0.0, True
    scores = pool.path_scores(aggregation) if method in SCORED else None
    if math.comb(size, n) <= exact_limit:
        credit = selection_credit(pool, all_subsets(size, n), method, scores, ties)
        return float(credit.mean()), 0.0, True
    rng = rng if rng is not None else np.random.default_rng(0)
    credit = selection_credit(pool, random_subsets(size, n, resamples, rng), method, scores, ties)
    return float(credit.mean()), float(credit.var(ddof=1) / len(credit)), False


def all_subsets(size: int, n: int) -> np.ndarray:
    """Every n-subset of range(size) as a (C(size, n), size) boolean mask."""
    chosen = np.array(list(itertools.combinations(range(size), n)), dtype=np.int64).reshape(-1, n)
    masks = np.zeros((len(chosen), size), dtype=bool)
    np.put_along_axis(masks, chosen, True, axis=1)
    return masks


def random_subsets(size: int, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uniform n-subsets of range(size) (each drawn without replacement) as masks: the n
    smallest of size i.i.d. uniform keys are a uniform random n-subset."""
    chosen = np.argpartition(rng.random((count, size)), n - 1, axis=1)[:, :n]
    masks = np.zeros((count, size), dtype=bool)
    np.put_along_axis(masks, chosen, True, axis=1)
    return masks


def selection_credit(pool: Pool, masks: np.ndarray, method: str, scores: np.ndarray | None,
                     ties: str) -> np.ndarray:
    """Per subset (a row of `masks`), the chance that `method` picks a right answer from it:
    0 or 1 with ties="first", the right share of the tied answers with ties="expected"."""
    groups = pool.groups
    answered = groups != NO_ANSWER
    in_subset = masks & answered  # unanswered paths are never chosen (group_answers skips them)
    rows = len(masks)
    if not answered.any():
        return np.zeros(rows)
    group_count = len(pool.group_answers)
    candidate_right = np.zeros(pool.size, dtype=bool)
    candidate_right[answered] = pool.group_correct[groups[answered]]

    if method == "max":  # PRM-Max: the best-scored answered path; ties in the score are exact
        s = np.where(in_subset, scores[None, :], -np.inf)
        best = s.max(axis=1, keepdims=True)
        top = in_subset & (s == best)
        if ties == "first":
            first = top.argmax(axis=1)  # the earliest of the tied paths
            return (top.any(axis=1) & candidate_right[first]).astype(float)
        return (top & candidate_right).sum(axis=1) / np.maximum(top.sum(axis=1), 1)

    # Columns of the answered candidates sorted by group (stable: recorded order within a group);
    # reduceat over each group's run of columns gives per-subset, per-group totals.
    by_group = np.argsort(np.where(answered, groups, group_count), kind="stable")[:answered.sum()]
    starts = np.flatnonzero(np.r_[True, np.diff(groups[by_group]) != 0])  # group g's run starts at starts[g]
    members = in_subset[:, by_group]
    counts = np.add.reduceat(members.astype(np.int64), starts, axis=1)  # rows x groups: paths per answer
    present = counts > 0
    if method == "majority":
        tied = present & (counts == counts.max(axis=1, keepdims=True))
    elif method == "vote":  # PRM-Vote: the largest score sum, then the largest count
        sums = np.where(present, np.add.reduceat(members * scores[None, by_group], starts, axis=1), -np.inf)
        best = sums.max(axis=1, keepdims=True)
        tolerance = VOTE_TIE_TOLERANCE * np.maximum(1.0, np.abs(np.where(np.isfinite(best), best, 0.0)))
        near = present & (sums >= best - tolerance)
        tied = near & (counts == np.where(near, counts, -1).max(axis=1, keepdims=True))
    else:
        raise PoolError(f"unknown method {method!r}")
    if ties == "expected":
        return (tied & pool.group_correct[None, :]).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
    # "first": the tied answer whose first path comes earliest in the recorded order (the order
    # group_answers meets answers, which max() keeps among equal keys)
    position = np.where(members, by_group[None, :], pool.size)
    first_position = np.minimum.reduceat(position, starts, axis=1)  # rows x groups
    winner = np.where(tied, first_position, pool.size + 1).argmin(axis=1)
    return (tied.any(axis=1) & pool.group_correct[winner]).astype(float)


def _stable_int(value: Any) -> int:
    """A 64-bit integer from a problem id, the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=8).digest(), "little")
