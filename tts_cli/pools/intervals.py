"""Intervals over problems: how far a mean accuracy would move on another draw of problems.

Percentile bootstrap: resample the problems with replacement B times, take the mean of each
resample; the interval at level L is the (1-L)/2 and (1+L)/2 quantiles of those means. For two
settings on the SAME problems, bootstrap the per-problem differences a_i - b_i: the problems'
own difficulty cancels, which makes the paired interval far narrower than two separate ones.

Many settings against one default (a profile's choice): a setting that clears its own 90%
interval by luck is likely among dozens, so `simultaneous_differences` widens every interval by
one critical value that holds for all of them together (the max-t bootstrap): the same resamples
of problems for every setting, each difference standardized by its bootstrap spread, and the
critical value the level-quantile of the largest of them. Near-copies of one setting (the same
pool at two aggregations) move together and count about once, where Bonferroni counts each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

DEFAULT_BOOTSTRAP = 10000
_CHUNK = 1 << 22  # resampled values held at once (32 MB of float64)


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    level: float
    problems: int

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def as_dict(self) -> dict:
        return {"mean": round(self.mean, 4), "lo": round(self.lo, 4), "hi": round(self.hi, 4),
                "level": round(self.level, 4), "problems": self.problems}


@dataclass(frozen=True)
class Difference(Interval):
    """mean(a - b) over the same problems, with its interval."""

    @property
    def clearly_positive(self) -> bool:
        """a beats b by more than the noise: the whole interval is above zero."""
        return self.lo > 0

    def describe(self) -> str:
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]"

    def as_dict(self) -> dict:
        return {**super().as_dict(), "clearly_positive": self.clearly_positive}


def bootstrap_means(values: Sequence[float], resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`: one per problem, or a row
    per problem of several settings' values (then each resample is one draw of problems for all
    of them, and a row of means comes back per resample)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // max(1, values.size))
    out = []
    for start in range(0, resamples, rows):
        take = min(rows, resamples - start)
        out.append(values[rng.integers(0, len(values), size=(take, len(values)))].mean(axis=1))
    return np.concatenate(out)


def bootstrap_interval(per_problem_values: Sequence[float], level: float = 0.9, seed: int = 0,
                       resamples: int = DEFAULT_BOOTSTRAP) -> Interval:
    """Percentile bootstrap interval of the mean over problems."""
    values = _check(per_problem_values, level)
    lo, hi = np.quantile(bootstrap_means(values, resamples, seed), [(1 - level) / 2, (1 + level) / 2])
    return Interval(mean=float(values.mean()), lo=float(lo), hi=float(hi), level=level, problems=len(values))


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.9, seed: int = 0,
                      resamples: int = DEFAULT_BOOTSTRAP) -> Difference:
    """mean(a - b) with a percentile bootstrap interval over the per-problem differences; a and b
    are per-problem values of two settings on the same problems, in the same order."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a paired difference needs the same problems: {len(a)} values against {len(b)}")
    d = _check(a - b, level)
    lo, hi = np.quantile(bootstrap_means(d, resamples, seed), [(1 - level) / 2, (1 + level) / 2])
    return Difference(mean=float(d.mean()), lo=float(lo), hi=float(hi), level=level, problems=len(d))


def simultaneous_differences(challengers: Mapping[str, Sequence[float]], base: Sequence[float], level: float = 0.9,
                             seed: int = 0, resamples: int = DEFAULT_BOOTSTRAP) -> tuple[dict[str, Difference], float]:
    """mean(c - base) for every challenger c (per-problem values on the same problems, in the same
    order), with intervals that hold together at `level`: each is mean +- critical * spread, where
    spread is the bootstrap standard deviation of that mean and critical the level-quantile of
    max_k |mean*_k - mean_k| / spread_k over resamples shared by all challengers. Returns
    ({key: Difference}, critical). A challenger equal to base on every problem plus a constant has
    no spread: its interval is that constant alone."""
    base = _check(base, level)
    keys = list(challengers)
    if not keys:
        return {}, 0.0
    diffs = np.array([np.asarray(challengers[k], dtype=float) - base for k in keys])
    if diffs.shape[1] != len(base):
        raise ValueError("simultaneous differences need every challenger on the same problems as the base")
    means = diffs.mean(axis=1)
    resampled = bootstrap_means(diffs.T, resamples, seed)  # resample x challenger
    spread = resampled.std(axis=0)
    varies = spread > 1e-12
    critical = 0.0
    if varies.any():
        t = np.abs(resampled[:, varies] - means[varies]) / spread[varies]
        critical = float(np.quantile(t.max(axis=1), level))
    out = {k: Difference(mean=float(m), lo=float(m - critical * s), hi=float(m + critical * s), level=level,
                         problems=len(base))
           for k, m, s in zip(keys, means, np.where(varies, spread, 0.0))}
    return out, critical


def stratified_interval(strata: Sequence[tuple[float, Sequence[float]]], level: float = 0.9, seed: int = 0,
                        resamples: int = DEFAULT_BOOTSTRAP) -> Interval:
    """Interval of sum_k w_k * mean(values_k) for fixed weights w_k: each stratum (a difficulty
    bin) is resampled on its own, as a prediction weighted by bin sizes needs."""
    strata = [(float(w), np.asarray(v, dtype=float)) for w, v in strata if w > 0]
    if not strata or any(len(v) == 0 for _, v in strata):
        raise ValueError("every weighted stratum needs at least one problem")
    total = np.zeros(resamples)
    for k, (w, v) in enumerate(strata):
        total += w * bootstrap_means(v, resamples, seed + k)
    mean = sum(w * v.mean() for w, v in strata)
    lo, hi = np.quantile(total, [(1 - level) / 2, (1 + level) / 2])
    return Interval(mean=float(mean), lo=float(lo), hi=float(hi), level=level,
                    problems=sum(len(v) for _, v in strata))


def _check(values, level: float) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("an interval needs at least one problem's value")
    return values
