"""Which setting a profile should name per (difficulty bin, budget), and the rule that decided.

Today's calibration takes the most accurate setting per cell; on a few dozen problems per bin
that is mostly noise. Here a setting has to beat a default by more than the noise:

1. The default is majority vote at the budget, or CoT when CoT's mean accuracy on the cell's
   problems is at least majority's (as good, at one path's cost).
2. Every other setting is compared with the default on the same problems (the problems every
   setting has). A setting is a clear win when the lower bound of its interval is above zero.
   The intervals hold for all settings compared together (intervals.simultaneous_differences, a
   max-t bootstrap): with a few dozen settings, one of them clears an unadjusted 90% bound by
   luck most of the time. Bonferroni (1 - (1 - level) / K) would guard too, but counts each of
   the near-copies a grid holds (one pool at two aggregations) as a separate chance, and so asks
   for a larger margin than the noise does.
3. Among the clear wins the largest mean difference is chosen (equal ones: the first listed, so
   list cheaper settings first); with none, the default stays.

Bins with fewer than `min_problems` problems are not decided on their own: hard is merged with
medium, easy with medium, medium with the larger of easy and hard (easy on a tie), and when the
merged set is still too small, the choice is made on all problems.
"""

from __future__ import annotations

from typing import Collection, Hashable, Mapping

import numpy as np

from ..difficulty import BIN_NAMES
from .intervals import DEFAULT_BOOTSTRAP, paired_difference, simultaneous_differences

DEFAULT_MIN_PROBLEMS = 20
PerProblem = Mapping[Hashable, float]  # problem id -> (expected) accuracy of one setting


def choose_setting(cell: Mapping[str, PerProblem], *, majority: str, cot: str | None = None,
                   problems: Collection | None = None, level: float = 0.9, seed: int = 0,
                   resamples: int = DEFAULT_BOOTSTRAP, adjust: bool = True) -> dict:
    """One cell: `cell` maps each candidate setting (majority and CoT among them) to its
    per-problem accuracies; `problems` limits the problems used. Returns a dict of plain types:
    setting, rule ("default" or "beats default by X [lo, hi]"), default, default_reason, level,
    simultaneous (adjust), critical (the intervals' half-width in bootstrap spreads; None when
    not adjusted), compared, problems, margin (the gain over the default a typical setting
    needed to count as beyond the noise: the median half-width of the intervals), accuracy,
    default_accuracy, difference (the chosen one's, or None), differences (every challenger's
    against the default) and accuracies. adjust=False: each setting gets its
    own interval at `level`, not guarded against luck."""
    if majority not in cell:
        raise ValueError(f"the majority setting {majority!r} is not among the settings measured")
    ids = [i for i in cell[majority] if problems is None or i in problems]
    if not ids:
        raise ValueError("no problems to choose on")

    def values(key: str, on: list) -> np.ndarray:
        return np.array([cell[key][i] for i in on], dtype=float)

    def mean_on(key: str) -> float:
        on = [i for i in ids if i in cell[key]]
        return float(values(key, on).mean()) if on else float("nan")

    default, reason = majority, "majority vote at this budget"
    if cot is not None and cot in cell:
        on = [i for i in ids if i in cell[cot]]
        if on and values(cot, on).mean() >= values(majority, on).mean():
            default, reason = cot, (f"CoT is as good as majority ({values(cot, on).mean():.3f} vs "
                                    f"{values(majority, on).mean():.3f}) at one path's cost")
    challengers = [k for k in cell if k != default]
    common = [i for i in ids if all(i in cell[k] for k in cell)]
    if not common:
        raise ValueError("no problem that every setting was measured on: nothing to compare them on")
    if adjust:
        diffs, critical = simultaneous_differences({k: values(k, common) for k in challengers}, values(default, common),
                                                   level=level, seed=seed, resamples=resamples)
    else:  # each its own interval at `level`
        diffs = {k: paired_difference(values(k, common), values(default, common), level=level, seed=seed,
                                      resamples=resamples) for k in challengers}
        critical = None
    best_key, best = None, None
    for key in challengers:
        d = diffs[key]
        if d.clearly_positive and (best is None or d.mean > best.mean):
            best_key, best = key, d
    # what a win needed here: the interval's half-width for a typical setting (the noise the
    # problems leave; a user reading "default" learns how much more a setting had to gain)
    half_widths = [d.hi - d.mean for d in diffs.values() if d.hi > d.mean]
    margin = float(np.median(half_widths)) if half_widths else None
    chosen = best_key or default
    rule = "default" if best is None else \
        f"beats default by {best.mean:.3f} [{best.lo:.3f}, {best.hi:.3f}]"
    return {"setting": chosen, "rule": rule, "default": default, "default_reason": reason,
            "level": level, "simultaneous": adjust, "critical": None if critical is None else round(critical, 4),
            "compared": len(challengers), "problems": len(common),
            "margin": None if margin is None else round(margin, 4),
            "accuracy": round(mean_on(chosen), 4), "default_accuracy": round(mean_on(default), 4),
            "difference": best.as_dict() if best is not None else None,
            "differences": {k: d.as_dict() for k, d in diffs.items()},
            "accuracies": {k: round(mean_on(k), 4) for k in cell}}


def decision_bins(bin_name: str, sizes: Mapping[str, int], min_problems: int) -> tuple[list[str], str | None]:
    """The bins whose problems decide `bin_name`'s choice, and the rule when it is not the bin
    alone: ([bin], None), ([bin, neighbour], "bin too small: merged with <neighbour>") or
    (all bins, "bin too small: all-problem choice")."""
    if sizes.get(bin_name, 0) >= min_problems:
        return [bin_name], None
    if bin_name == "medium":
        neighbour = "easy" if sizes.get("easy", 0) >= sizes.get("hard", 0) else "hard"
    else:
        neighbour = "medium"
    if sizes.get(bin_name, 0) + sizes.get(neighbour, 0) >= min_problems:
        return [bin_name, neighbour], f"bin too small: merged with {neighbour}"
    return list(BIN_NAMES), "bin too small: all-problem choice"


def choose_profile(accuracies: Mapping[int, Mapping[str, PerProblem]], bin_of: Mapping[Hashable, str], *,
                   majority: Mapping[int, str], cot: str | None = None, problems: Collection | None = None,
                   min_problems: int = DEFAULT_MIN_PROBLEMS, level: float = 0.9, seed: int = 0,
                   resamples: int = DEFAULT_BOOTSTRAP, adjust: bool = True) -> list[dict]:
    """A choice per (bin, budget). accuracies: budget -> setting -> problem id -> accuracy;
    bin_of: problem id -> bin; majority: budget -> the majority setting's key; cot: CoT's key
    (the same at every budget); problems: the ones to decide on (the calibration split).

    Each entry: bin, budget, setting, rule (the chooser's rule, or the bin-too-small one),
    decision (the chooser's own rule on the set it decided on), decided_on (bins), bin_problems,
    and the chooser's fields (default, accuracy, difference, ...)."""
    out = []
    for budget in sorted(accuracies):
        cell = accuracies[budget]
        if majority.get(budget) not in cell:
            raise ValueError(f"budget {budget}: the majority setting {majority.get(budget)!r} was not measured")
        ids = [i for i in cell[majority[budget]] if i in bin_of and (problems is None or i in problems)]
        if not ids:
            raise ValueError(f"budget {budget}: no problems with a difficulty bin to choose on")
        sizes = {b: sum(1 for i in ids if bin_of[i] == b) for b in BIN_NAMES}
        for b in BIN_NAMES:
            bins, merged_rule = decision_bins(b, sizes, min_problems)
            on = {i for i in ids if bin_of[i] in bins}
            decided = choose_setting(cell, majority=majority[budget], cot=cot, problems=on, level=level, seed=seed,
                                     resamples=resamples, adjust=adjust)
            out.append({"bin": b, "budget": budget, "setting": decided["setting"],
                        "rule": merged_rule or decided["rule"], "decision": decided["rule"], "decided_on": bins,
                        "bin_problems": sizes[b],
                        **{k: v for k, v in decided.items() if k not in ("setting", "rule")}})
    return out
