"""`tts calibrate`: which search setting is compute-optimal per difficulty bin and budget.

What runs (each run its own resumable results file in OUT.runs/, all of them one stream of
searches, problem by problem, so a problem's prompt is prefilled once for all):

- a sample pool per temperature: Best-of-N at N_max = max(budgets), every step scored (majority
  at N_max without a verifier). Any n of its N_max independent paths are a run at budget n, so
  majority and Best-of-N (each selection and aggregation) at every budget are estimated from it
  (pools.expected_accuracy) instead of being run one by one;
- greedy CoT once (it does not depend on the budget);
- beam search and DVTS, each (budget, beam width, aggregation, temperature) its own run: their
  paths depend on each other, so a smaller budget is not a subset of a larger one.

The difficulty of a problem (its pass@1) is the share of right paths in the pool at the
reference temperature (the run's --temperature when it is among --temperatures, else the first
listed): no separate difficulty run. The choice per (bin, budget), its intervals, the held-out
check and the difficulty model are made from these measurements in calibrate_profile.py.

`per_setting=True` runs the calibration as it was before pools: every setting its own run, plus
a difficulty run (Best-of-N at --samples); kept to measure what pools save (benchmarks/calibrate_cost.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

from .calibrate_profile import Options, build_profile
from .calibrate_plan import (COT, DEFAULT_STOP_THRESHOLDS, DEFAULT_STRATEGIES, DIFFICULTY, POOLED_STRATEGIES, Setting, calibration_plan, candidate_settings,
                             pool_key, pool_setting, reference_temperature, run_files)
from .datasets import Problem
from .difficulty import Bins
from .grade import grade_runs
from .profile import Profile
from .results import open_results

__all__ = ["COT", "DIFFICULTY", "POOLED_STRATEGIES", "Setting", "calibrate", "calibrate_command", "calibrate_file",
           "calibration_plan", "candidate_settings", "pool_key", "pool_setting", "reference_temperature", "run_files"]

SolveSettings = Callable[[Iterable[tuple[Setting, Problem]]], Iterator[tuple[tuple[Setting, Problem], object]]]


def calibrate(problems: list[Problem], budgets: list[int], workdir: Path, *, solve_many: SolveSettings,
              has_verifier: bool, policy: dict, prm: str | None, bins: Bins = Bins(),
              settings_for: Callable[[int], list[Setting]] | None = None, per_setting: bool = False,
              samples: int = 8, base_temperature: float | None = None, base_aggregation: str = "last",
              holdout: float = 0.3, seed: int = 0, min_problems: int | None = None, level: float = 0.9,
              on_record: Callable[[str, dict], None] | None = None, files: dict | None = None,
              known_keys: set[str] | None = None) -> Profile:
    """Run the plan (resumably: what a results file holds is read back, not solved again), then
    estimate every setting, choose per bin and budget with the noise in view, and check the
    choice on the held-out problems (calibrate_profile.build_profile).

    `solve_many` runs (setting, problem) pairs and yields their results as they end. `files`:
    the runs' results files already opened (results.open_results on run_files), else they are
    opened here, each run's configuration being its setting's key. base_temperature and
    base_aggregation: the run's own (--temperature, --aggregation): the probe's."""
    settings_for = settings_for or (lambda b: candidate_settings(b, has_verifier=has_verifier))
    plan = calibration_plan(budgets, settings_for, has_verifier=has_verifier, per_setting=per_setting,
                            samples=samples)
    runs = files or open_results({k: (path, {"setting": plan[k].key}) for k, path in run_files(plan, workdir).items()})
    key_of = {setting: key for key, setting in plan.items()}

    def solve_keys(pairs):
        for (setting, problem), out in solve_many((plan[k], p) for k, p in pairs):
            yield (key_of[setting], problem), out

    summaries = grade_runs(problems, runs, solve_keys, on_record=on_record, known_keys=known_keys)
    how = next((s.interrupted for s in summaries.values() if s.interrupted), None)
    if how:
        from .engine import Terminated
        raise Terminated() if how == "terminated" else KeyboardInterrupt()
    options = Options(budgets=budgets, bins=bins, has_verifier=has_verifier, holdout=holdout, seed=seed,
                      level=level, base_aggregation=base_aggregation, base_temperature=base_temperature,
                      **({"min_problems": min_problems} if min_problems is not None else {}))
    records = {key: summary.records for key, summary in summaries.items()}
    profile = build_profile(plan, records, settings_for, options, policy=policy, prm=prm)
    profile.meta.update(problems=len(problems), mode="per-setting" if per_setting else "pooled",
                        runs={key: setting.key for key, setting in plan.items()})
    return profile


def calibrate_file(problem_set, out: Path, settings, batch, budgets: list[int], *, samples: int,
                   beam_widths: list[int], aggregations: list[str], temperatures: list, bins: Bins,
                   strategies=DEFAULT_STRATEGIES, stop_thresholds=DEFAULT_STOP_THRESHOLDS,
                   holdout: float = 0.3, min_problems: int | None = None, per_setting: bool = False,
                   shared_draws: bool = True, say: Callable[[str], None] | None = None,
                   on_record: Callable[[str, dict, str], None] | None = None):
    """`tts calibrate`: run the plan on the problems (resumably, in OUT.runs/), write the profile
    to `out` and where `--strategy auto` finds it for this policy and verifier.
    settings: the run's RunSettings (its search values are the base of every setting);
    batch: BatchSettings. Returns (profile, solver info, saved path). on_record(key, record,
    in flight). shared_draws (pooled only; a local solver): the runs share the steps they would
    all sample (search/memo.py)."""
    import time

    from .batch import Run, open_runs
    from .profile import saved_profile_path

    def plan_for(budget):
        return candidate_settings(budget, has_verifier=True, beam_widths=beam_widths, aggregations=aggregations,
                                  temperatures=temperatures, strategies=strategies, stop_thresholds=stop_thresholds)

    def run_settings(setting: Setting):  # validated: a bad --aggregations value fails before any model loads
        return settings.but(setting.strategy, **{k: v for k, v in setting.overrides().items() if k != "strategy"})

    plan = calibration_plan(budgets, plan_for, has_verifier=True, per_setting=per_setting, samples=samples)
    workdir = out.parent / (out.name + ".runs")
    paths = run_files(plan, workdir)
    runs = {key: Run(paths[key], run_settings(setting)) for key, setting in plan.items()}
    # every setting a profile may choose must fit the engines, the ones estimated from pools too
    extra = [(r.strategy, r.search) for r in (run_settings(s) for b in budgets for s in plan_for(b))]
    with open_runs(runs, batch, problem_set, say=say, plans=extra, verifier=True) as (files, solver, runs):
        key_of = {setting: key for key, setting in plan.items()}

        def job_for(setting):
            run = runs[key_of[setting]]
            return run.settings.strategy, run.settings.search

        info = solver.info()
        share = getattr(solver, "share_draws", None)  # a Ray cluster's workers do not share
        memo = share() if shared_draws and not per_setting and share is not None else None
        t0 = time.perf_counter()
        profile = calibrate(problem_set.problems, budgets, workdir, has_verifier=True, bins=bins,
                            solve_many=lambda pairs: solver.solve_many(pairs, job_for),
                            policy={"name": info["policy_name"], "file": info["policy"], "params": info["params"]},
                            prm=info["verifier"], settings_for=plan_for, per_setting=per_setting, samples=samples,
                            base_temperature=settings.search.temperature, base_aggregation=settings.search.aggregation,
                            holdout=holdout, min_problems=min_problems,
                            files=files, known_keys=problem_set.keys,
                            on_record=(lambda key, rec: on_record(key, rec, solver.in_flight)) if on_record else None)
    profile.meta.update(seconds=round(time.perf_counter() - t0, 1), samples=samples if per_setting else None,
                        shared_draws=memo.stats.as_dict() if memo is not None else None)
    profile.save(out)
    saved = saved_profile_path(info["policy"], info["verifier"])
    saved.parent.mkdir(parents=True, exist_ok=True)
    profile.save(saved)
    return profile, info, saved


def calibrate_command(data, out, opts: dict, *, budgets: list[int], beam_widths: list[int], aggregations: list[str],
                      strategies=DEFAULT_STRATEGIES, stop_thresholds=DEFAULT_STOP_THRESHOLDS,
                      temperatures: list, easy: float, medium: float, holdout: float, min_problems: int,
                      per_setting: bool, samples: int, shared_draws: bool = True, say=None, on_record=None):
    """`tts calibrate DATA --out PROFILE`: the flags checked (before any model loads), then
    calibrate_file. Returns (profile, solver info, saved path)."""
    from .batch import read_problem_set
    from .settings import SettingsError, build_batch, build_run, check_writable
    if data is None or out is None:
        raise SettingsError("calibrate needs a data set and --out PROFILE (or --show PROFILE to print one)")
    try:
        bins = Bins(easy=easy, medium=medium)
    except ValueError as e:
        raise SettingsError(str(e))
    settings = build_run(opts["config"], opts, strategy="majority")
    batch = build_batch(opts)
    problem_set = read_problem_set(data, batch)
    check_writable(out)
    if any(not 0.0 <= t <= 1.0 for t in stop_thresholds):
        raise SettingsError(f"--stop-thresholds: each must be between 0 and 1, got {', '.join(map(str, stop_thresholds))}")
    return calibrate_file(problem_set, out, settings, batch, budgets, samples=samples, beam_widths=beam_widths,
                          strategies=strategies, stop_thresholds=stop_thresholds,
                          aggregations=aggregations, temperatures=temperatures, bins=bins, holdout=holdout,
                          min_problems=min_problems, per_setting=per_setting, shared_draws=shared_draws, say=say,
                          on_record=on_record)
