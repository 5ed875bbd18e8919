"""Checking a profile on problems it was not chosen on.

The split is by a hash of (seed, problem id): a problem's side never depends on which other
problems exist, so adding problems to a data set never moves one across the split.
"""

from __future__ import annotations

import hashlib
from typing import Collection, Hashable, Iterable, Mapping

import numpy as np

from .choice import PerProblem
from .intervals import DEFAULT_BOOTSTRAP, bootstrap_interval, paired_difference, stratified_interval


def heldout_share(problem_id: Hashable, seed: int = 0) -> float:
    """A uniform number in [0, 1) fixed by (seed, id)."""
    digest = hashlib.blake2b(f"{seed}\x00{problem_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0 ** 64


def heldout_ids(ids: Iterable[Hashable], share: float = 0.3, seed: int = 0) -> set:
    """The ids held out: those whose hash of (seed, id) falls below `share` (so about `share`
    of them; the realized share varies as a binomial draw)."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    return {i for i in ids if heldout_share(i, seed) < share}


def evaluate_profile_on_heldout(choices: list[dict], accuracies: Mapping[int, Mapping[str, PerProblem]],
                                bin_of: Mapping[Hashable, str], heldout: Collection, *, majority: Mapping[int, str],
                                heldout_bin_of: Mapping[Hashable, str] | None = None, level: float = 0.9,
                                seed: int = 0, resamples: int = DEFAULT_BOOTSTRAP) -> list[dict]:
    """Per budget: the profile's predicted accuracy against its realized one, next to the best
    single fixed setting and majority. `choices` must come from choose_profile on the
    calibration problems only (the ids not in `heldout`).

    predicted = sum over bins b of (held-out problems in b / held-out problems) x the chosen
      setting's mean on the calibration problems in b (on those it was decided on when b has
      none; interval: each bin's calibration problems resampled on their own). Routing by
      predicted bins (a probe's), pass the predicted bins of the calibration problems as
      `bin_of` too, so that the prediction is the in-sample accuracy of that same routing;
    realized = the mean over held-out problems of the accuracy of the setting chosen for the
      problem's bin (heldout_bin_of, e.g. bins predicted from a probe; default bin_of);
    best fixed = the setting with the highest mean on all calibration problems at the budget.
    Also the paired differences profile - majority and profile - best fixed on the held-out
    problems. All as plain dicts."""
    heldout_bin_of = heldout_bin_of or bin_of
    out = []
    for budget in sorted({c["budget"] for c in choices}):
        cell, maj = accuracies[budget], majority[budget]
        chosen = {c["bin"]: c for c in choices if c["budget"] == budget}
        held = [i for i in cell[maj] if i in heldout and i in heldout_bin_of]
        calib = [i for i in cell[maj] if i not in heldout and i in bin_of]
        if not held or not calib:
            raise ValueError(f"budget {budget}: {len(held)} held-out and {len(calib)} calibration problems: "
                             "both splits need problems")
        missing = {heldout_bin_of[i] for i in held} - set(chosen)
        if missing:
            raise ValueError(f"budget {budget}: no choice for bin(s) {', '.join(sorted(missing))}")

        def per_problem(key: str, ids: list) -> np.ndarray:
            lacking = [i for i in ids if i not in cell[key]]
            if lacking:
                raise ValueError(f"budget {budget}: setting {key} has no value for problem {lacking[0]}")
            return np.array([cell[key][i] for i in ids], dtype=float)

        realized = np.array([cell[chosen[heldout_bin_of[i]]["setting"]][i] for i in held], dtype=float)
        strata = []
        for b, c in chosen.items():
            weight = sum(1 for i in held if heldout_bin_of[i] == b) / len(held)
            if weight > 0:
                # the bin's own calibration problems, whatever the choice was decided on: a choice
                # made on merged bins is still worth what it is worth in this bin
                in_bin = [i for i in calib if bin_of[i] == b]
                decided_on = in_bin or [i for i in calib if bin_of[i] in c["decided_on"]] or calib
                strata.append((weight, per_problem(c["setting"], decided_on)))
        calib_means = {k: per_problem(k, calib).mean() for k in cell if all(i in cell[k] for i in calib)}
        fixed = max(calib_means, key=calib_means.get)  # the first listed among equals
        fixed_held, maj_held = per_problem(fixed, held), per_problem(maj, held)
        interval = dict(level=level, seed=seed, resamples=resamples)
        out.append({
            "budget": budget, "heldout_problems": len(held), "calibration_problems": len(calib),
            "profile": {"settings": {b: c["setting"] for b, c in chosen.items()},
                        "predicted": stratified_interval(strata, **interval).as_dict(),
                        "realized": bootstrap_interval(realized, **interval).as_dict()},
            "best_fixed": {"setting": fixed,
                           "predicted": bootstrap_interval(per_problem(fixed, calib), **interval).as_dict(),
                           "realized": bootstrap_interval(fixed_held, **interval).as_dict()},
            "majority": {"setting": maj,
                         "predicted": bootstrap_interval(per_problem(maj, calib), **interval).as_dict(),
                         "realized": bootstrap_interval(maj_held, **interval).as_dict()},
            "profile_minus_majority": paired_difference(realized, maj_held, **interval).as_dict(),
            "profile_minus_best_fixed": paired_difference(realized, fixed_held, **interval).as_dict(),
        })
    return out
