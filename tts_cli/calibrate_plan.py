"""What a calibration runs: the settings a profile may choose, and the runs that measure them.

Majority and Best-of-N sample independent paths: one pool per temperature (Best-of-N at N_max =
max(budgets), every step scored) measures them at every budget. CoT runs once; each beam-search
and DVTS setting is its own run. `per_setting=True` gives the plan before pools: every setting
its own run, plus a difficulty run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

# independent paths: estimated from the pool (the early-stopping ones by pools.adaptive)
POOLED_STRATEGIES = ("majority", "best-of-n", "majority-adaptive", "best-of-n-adaptive")
# what a calibration measures unless told otherwise; particle-filter (its own runs) when asked
DEFAULT_STRATEGIES = ("cot", "majority", "majority-adaptive", "best-of-n", "best-of-n-adaptive", "beam", "dvts")
STRATEGIES = DEFAULT_STRATEGIES + ("particle-filter",)
# the live default and a cheaper one; which pays depends on how often the policy's answers agree
# (SmolLM2 on stories-dev/mixed-dev: only 0.95 kept majority's accuracy; docs/measurements.md)
DEFAULT_STOP_THRESHOLDS = (0.7, 0.95)
DIFFICULTY = "difficulty"  # per_setting only: the run that samples each problem to estimate its pass@1


@dataclass(frozen=True)
class Setting:
    strategy: str
    n: int
    beam_width: int | None = None
    selection: str | None = None
    aggregation: str | None = None
    temperature: float | None = None  # None: the run's --temperature
    stop_threshold: float | None = None  # the early-stopping strategies'
    # "pool" or "difficulty" for the runs that are not a setting a profile chooses: it keeps them
    # apart (equality, hashing) from a chosen setting with the same search values
    role: str | None = None

    @property
    def key(self) -> str:
        parts = [self.strategy, f"n{self.n}"]
        if self.beam_width:
            parts.append(f"m{self.beam_width}")
        if self.selection:
            parts.append(self.selection)
        if self.aggregation:
            parts.append(self.aggregation)
        if self.stop_threshold is not None:
            parts.append(f"s{self.stop_threshold:g}")
        if self.temperature is not None:
            parts.append(f"t{self.temperature:g}")
        return "_".join(parts)

    def overrides(self) -> dict:
        """The search values this setting sets (strategy, n, ...): what RunSettings.but takes."""
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "role"}

    @property
    def pooled(self) -> bool:
        return self.strategy in POOLED_STRATEGIES


COT = Setting("cot", 1)  # greedy CoT: one path whatever the budget


def candidate_settings(budget: int, *, has_verifier: bool, beam_widths=(2, 4), selections=("vote", "max"),
                       aggregations=("last", "min"), temperatures=(None,), strategies=DEFAULT_STRATEGIES,
                       stop_thresholds=DEFAULT_STOP_THRESHOLDS) -> list[Setting]:
    """Every setting a profile may choose at this budget. Each sampled setting is measured at each
    of `temperatures` (a small policy's best temperature is often well below the paper's 0.7: its
    samples right less often, its votes split). Greedy CoT has no temperature; listed first, then
    the cheaper settings before the dearer ones (the choice keeps the first among equals).
    `strategies` limits the list; the early-stopping ones come at each of `stop_thresholds`."""
    # CoT spends one greedy path of the budget: for a tiny policy on hard problems the cheapest
    # setting can be the best one, and the profile should be able to say so.
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r} for calibrate (known: {', '.join(STRATEGIES)})")
    out = [Setting("cot", budget)] if "cot" in strategies else []
    for t in temperatures:
        for thr in stop_thresholds if "majority-adaptive" in strategies else ():
            out.append(Setting("majority-adaptive", budget, stop_threshold=thr, temperature=t))
        if "majority" in strategies:
            out.append(Setting("majority", budget, temperature=t))
        if not has_verifier:
            continue
        for agg in aggregations:
            for thr in stop_thresholds if "best-of-n-adaptive" in strategies else ():
                out.append(Setting("best-of-n-adaptive", budget, selection="vote", aggregation=agg,
                                   stop_threshold=thr, temperature=t))
            for sel in selections if "best-of-n" in strategies else ():
                out.append(Setting("best-of-n", budget, selection=sel, aggregation=agg, temperature=t))
            if "particle-filter" in strategies:
                out.append(Setting("particle-filter", budget, selection="vote", aggregation=agg, temperature=t))
            for m in beam_widths:
                if budget % m == 0 and m <= budget:
                    for strategy in ("beam", "dvts"):
                        if strategy in strategies:
                            out.append(Setting(strategy, budget, beam_width=m, selection="vote", aggregation=agg,
                                               temperature=t))
    return out


def pool_setting(n_max: int, temperature: float | None, has_verifier: bool) -> Setting:
    """The run that samples the pool: every path scored step by step when there is a verifier
    (its selection and aggregation are the run's own: every other is computed from the step scores)."""
    return Setting("best-of-n" if has_verifier else "majority", n_max, temperature=temperature, role="pool")


def pool_key(n_max: int, temperature: float | None) -> str:
    """The pool run's key (and results file name): its size and temperature, so that a
    calibration with other budgets or temperatures samples its own pool instead of refusing the
    file of another."""
    return f"pool_n{n_max}" + (f"_t{temperature:g}" if temperature is not None else "")


def subtree_source(setting: Setting, budgets: list[int], settings_for: Callable[[int], list[Setting]]) -> Setting:
    """The DVTS run a DVTS setting is estimated from: the same setting at the largest budget that
    has it (its N/M subtrees hold a DVTS run at every smaller multiple of M: pools.subtrees)."""
    same = [s for b in budgets for s in settings_for(b) if s.strategy == "dvts" and replace(s, n=setting.n) == setting]
    return max(same, key=lambda s: s.n, default=setting)


def calibration_plan(budgets: list[int], settings_for: Callable[[int], list[Setting]], *, has_verifier: bool,
                     per_setting: bool = False, samples: int = 8) -> dict[str, Setting]:
    """Run key -> Setting: what runs. Pooled (default): a pool per temperature at max(budgets),
    CoT once, each beam-search setting, and each DVTS setting at its largest budget.
    per_setting: the difficulty run and every setting."""
    plan: dict[str, Setting] = {}
    if per_setting:
        plan[DIFFICULTY] = Setting("best-of-n" if has_verifier else "majority", samples, role=DIFFICULTY)
    for b in budgets:
        for s in settings_for(b):
            if s.strategy == "cot":
                plan.setdefault(COT.key, COT)
            elif s.pooled and not per_setting:
                plan.setdefault(pool_key(max(budgets), s.temperature), pool_setting(max(budgets), s.temperature, has_verifier))
            elif s.strategy == "dvts" and not per_setting:
                source = subtree_source(s, budgets, settings_for)
                plan.setdefault(source.key, source)
            else:
                plan.setdefault(s.key, s)
    return plan


def reference_temperature(temperatures: Iterable[float | None], base: float | None) -> float | None:
    """The temperature whose pool gives each problem's difficulty and the probe's features, and
    whose majority vote is the default choice: the run's own (`base`) when it was measured (or
    when the settings carry none), else the first one listed."""
    temperatures = list(dict.fromkeys(temperatures))
    if not temperatures or None in temperatures:
        return None
    return base if base in temperatures else temperatures[0]


def run_files(plan: dict, workdir: Path) -> dict[str, Path]:
    """Each run's resumable results file in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return {key: workdir / f"{key}.jsonl" for key in plan}
