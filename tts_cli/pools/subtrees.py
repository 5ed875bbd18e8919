"""DVTS at smaller budgets from one DVTS run: its subtrees are the pool.

DVTS at budget N with width M grows N/M subtrees that never exchange anything: each is its own
search from the prompt, and the answer is chosen (PRM-Vote) over the finished paths of all of
them. So any k of a run's N/M subtrees are a DVTS run at budget k*M, as any n of a Best-of-N
pool's paths are a run at n. The expected accuracy at budget n is the mean, over the
C(N/M, n/M) choices of n/M subtrees (every one when there are at most exact_limit, else
`resamples` random ones seeded by problem id and n), of whether PRM-Vote over their candidates
picks a right answer (estimate.selection_credit, ties to the earliest recorded, as there).

Only the run's own aggregation: which path continues a subtree depends on it, so another
aggregation is another search. The records must say each candidate's subtree (`branch`, kept
since this estimate exists); records of older runs are refused in one line.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .estimate import (DEFAULT_EXACT_LIMIT, DEFAULT_RESAMPLES, Accuracy, _stable_int, all_subsets, random_subsets,
                       selection_credit)
from .pool import NO_BRANCH, Pool, PoolError


def subtree_accuracy(pools: Sequence[Pool], n: int, beam_width: int, *, selection: str = "vote", seed: int = 0,
                     resamples: int = DEFAULT_RESAMPLES, exact_limit: int = DEFAULT_EXACT_LIMIT) -> Accuracy:
    """DVTS at budget n (n/beam_width subtrees) from DVTS runs at a larger budget; selection
    "pass": whether any candidate of the chosen subtrees is right (pass@n, the ceiling)."""
    if beam_width < 1 or n < beam_width or n % beam_width:
        raise PoolError(f"DVTS budget {n} is not a multiple of its width {beam_width}")
    if selection not in ("vote", "max", "pass"):
        raise PoolError(f"unknown selection {selection!r}: vote, max or pass")
    k = n // beam_width
    values, exact, variances = [], [], []
    for index, pool in enumerate(pools):
        branches = pool.branches if pool.branches is not None else np.full(pool.size, NO_BRANCH)
        if pool.size and (branches == NO_BRANCH).any():
            raise PoolError(f"problem {pool.id}: its record does not say which subtree each path grew in "
                            "(a run from before subtrees were recorded): run DVTS at this budget instead")
        subtrees = np.unique(branches)
        if k > len(subtrees):
            raise PoolError(f"problem {pool.id}: budget {n} needs {k} subtrees, the run has {len(subtrees)}")
        scores = pool.path_scores() if selection != "pass" else None
        is_exact = math.comb(len(subtrees), k) <= exact_limit
        if is_exact:
            picked = all_subsets(len(subtrees), k)
        else:
            rng = np.random.default_rng([seed, _stable_int(pool.id if pool.id is not None else index), n, k])
            picked = random_subsets(len(subtrees), k, resamples, rng)
        masks = picked[:, np.searchsorted(subtrees, branches)]  # rows x candidates: in a chosen subtree
        if selection == "pass":
            credit = (masks & pool.candidate_correct[None, :]).any(axis=1).astype(float)
        else:
            credit = selection_credit(pool, masks, selection, scores, "first")
        values.append(float(credit.mean()))
        exact.append(is_exact)
        variances.append(0.0 if is_exact else float(credit.var(ddof=1) / len(credit)))
    count = len(values)
    return Accuracy(method=f"dvts-{selection}", n=n, aggregation=pools[0].aggregation if pools else None,
                    ties="first", ids=[p.id for p in pools], per_problem=np.array(values, dtype=float),
                    exact=np.array(exact, dtype=bool),
                    monte_carlo_se=math.sqrt(sum(variances)) / count if count else 0.0, resamples=resamples)
