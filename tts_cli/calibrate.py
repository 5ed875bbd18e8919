"""`tts calibrate`: measure which search setting is compute-optimal per difficulty bin and budget.

1. Difficulty: sample K paths per problem and grade them: pass@1, binned.
2. Every candidate setting (strategy x budget x beam width x PRM-Vote/Max x aggregation) is
   graded on every problem, each into its own resumable results file (the same code as
   `tts grade`). Greedy CoT does not depend on the budget: it runs once per problem.
3. Per (bin, budget) the most accurate setting wins (ties: fewer FLOPs). The frontier is the
   set of settings no other setting beats on both accuracy and FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .answers import answers_match
from .datasets import Problem
from .difficulty import BIN_NAMES, Bins
from .grade import grade_runs, pass_at_n
from .profile import Choice, Profile
from .results import open_results


@dataclass(frozen=True)
class Setting:
    strategy: str
    n: int
    beam_width: int | None = None
    selection: str | None = None
    aggregation: str | None = None
    temperature: float | None = None  # None: the run's --temperature

    @property
    def key(self) -> str:
        parts = [self.strategy, f"n{self.n}"]
        if self.beam_width:
            parts.append(f"m{self.beam_width}")
        if self.selection:
            parts.append(self.selection)
        if self.aggregation:
            parts.append(self.aggregation)
        if self.temperature is not None:
            parts.append(f"t{self.temperature:g}")
        return "_".join(parts)

    def overrides(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def candidate_settings(budget: int, *, has_verifier: bool, beam_widths=(2, 4), selections=("vote", "max"),
                       aggregations=("last", "min"), temperatures=(None,)) -> list[Setting]:
    """Every setting to measure at this budget. Each sampled setting is measured at each of
    `temperatures` (a small policy's best temperature is often well below the paper's 0.7: its
    samples right less often, its votes split). Greedy CoT has no temperature."""
    # CoT spends one greedy path of the budget: for a tiny policy on hard problems the cheapest
    # setting can be the best one, and the profile should be able to say so.
    out = [Setting("cot", budget)]
    for t in temperatures:
        out.append(Setting("majority", budget, temperature=t))
        if not has_verifier:
            continue
        for agg in aggregations:
            for sel in selections:
                out.append(Setting("best-of-n", budget, selection=sel, aggregation=agg, temperature=t))
            for m in beam_widths:
                if budget % m == 0 and m <= budget:
                    out.append(Setting("beam", budget, beam_width=m, selection="vote", aggregation=agg, temperature=t))
                    out.append(Setting("dvts", budget, beam_width=m, selection="vote", aggregation=agg, temperature=t))
    return out


DIFFICULTY = "difficulty"  # the run that samples each problem to estimate its pass@1


def calibration_plan(budgets: list[int], samples: int, settings_for: Callable[[int], list[Setting]]) -> dict:
    """Run key -> Setting: the difficulty run and every setting at every budget, greedy CoT once."""
    plan: dict[str, Setting] = {DIFFICULTY: Setting("majority", samples)}
    for b in budgets:
        for s in settings_for(b):
            s = Setting("cot", 1) if s.strategy == "cot" else s
            plan.setdefault(s.key, s)
    return plan


def run_files(plan: dict, workdir: Path) -> dict[str, Path]:
    """Each run's resumable results file in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return {key: workdir / f"{key}.jsonl" for key in plan}


def calibrate(problems: list[Problem], budgets: list[int], workdir: Path, *,
              solve_many: Callable[[Iterable[tuple[Setting, Problem]]], Iterator[tuple[tuple[Setting, Problem], object]]],
              samples: int, has_verifier: bool, bins: Bins = Bins(), policy: dict, prm: str | None,
              settings_for: Callable[[int], list[Setting]] | None = None,
              on_record: Callable[[str, dict], None] | None = None, files: dict | None = None,
              known_keys: set[str] | None = None) -> Profile:
    """Grade the difficulty run and every setting on every problem, then choose per bin and
    budget. All of it is one stream of searches, problem by problem: a problem's prompt is
    prefilled once for every setting, and greedy CoT (which does not depend on N) runs once.
    `solve_many` runs (setting, problem) pairs (the difficulty run is majority with N=samples)
    and yields their results as they end. `files`: the runs' results files already opened
    (results.open_results on run_files, with each run's configuration), else they are opened
    here, each run's configuration being its setting's key."""
    plan = calibration_plan(budgets, samples, settings_for or (
        lambda b: candidate_settings(b, has_verifier=has_verifier)))
    runs = files or open_results({k: (path, {"setting": plan[k].key}) for k, path in run_files(plan, workdir).items()})

    def solve_keys(pairs):
        for (setting, problem), out in solve_many((plan[k], p) for k, p in pairs):
            yield (setting.key if setting is not plan[DIFFICULTY] else DIFFICULTY, problem), out

    summaries = grade_runs(problems, runs, solve_keys, on_record=on_record, known_keys=known_keys)
    how = next((s.interrupted for s in summaries.values() if s.interrupted), None)
    if how:
        from .engine import Terminated
        raise Terminated() if how == "terminated" else KeyboardInterrupt()
    difficulty = {r.get("key"): sampled_pass_at_1(r) for r in summaries[DIFFICULTY].records}
    bin_of = {p.key: bins.of(difficulty.get(p.key, 0.0)) for p in problems}
    measured = [(plan[k], summaries[k].records) for k in plan if k != DIFFICULTY]

    choices = []
    for budget in budgets:
        for b in BIN_NAMES:
            best = None
            for setting, records in measured:
                if setting.n != budget and setting.strategy != "cot":  # CoT is the same at any budget
                    continue
                rs = [r for r in records if bin_of.get(r.get("key")) == b and not r.get("error")]
                if not rs:
                    continue
                acc = sum(bool(r.get("correct")) for r in rs) / len(rs)
                flops = sum(r.get("compute", {}).get("flops", 0.0) for r in rs) / len(rs)
                cand = Choice(bin=b, budget=budget, strategy=setting.strategy, accuracy=round(acc, 4),
                              flops=flops, problems=len(rs), beam_width=setting.beam_width,
                              selection=setting.selection, aggregation=setting.aggregation,
                              temperature=setting.temperature, pass_at_n=pass_at_n(rs))
                if best is None or (cand.accuracy, -cand.flops) > (best.accuracy, -best.flops):
                    best = cand
            if best is not None:
                choices.append(best)
    points = []
    for setting, records in measured:
        rs = [r for r in records if not r.get("error")]
        if rs:
            points.append({"setting": setting.key, "accuracy": round(sum(bool(r.get("correct")) for r in rs) / len(rs), 4),
                           "flops": sum(r.get("compute", {}).get("flops", 0.0) for r in rs) / len(rs),
                           "pass_at_n": pass_at_n(rs)})
    frontier = [p for p in points
                if not any(q["accuracy"] >= p["accuracy"] and q["flops"] < p["flops"] or
                           q["accuracy"] > p["accuracy"] and q["flops"] <= p["flops"] for q in points)]
    frontier.sort(key=lambda p: p["flops"])
    counts = {b: sum(1 for v in bin_of.values() if v == b) for b in BIN_NAMES}
    return Profile(policy=policy, prm=prm, bins=bins, choices=choices, frontier=frontier,
                   meta={"problems": len(problems), "problems_per_bin": counts, "budgets": budgets,
                         "settings_measured": [s.key for s, _ in measured]})


def sampled_pass_at_1(record: dict) -> float:
    """pass@1 from a difficulty record: the share of its sampled paths that were right."""
    cands = record.get("candidates") or []
    ref = record.get("reference")
    if not cands or ref is None:
        return 0.0
    return sum(answers_match(c.get("answer"), ref) for c in cands) / len(cands)


def calibrate_file(problem_set, out: Path, settings, batch, budgets: list[int], *, samples: int,
                   beam_widths: list[int], aggregations: list[str], temperatures: list, bins: Bins,
                   say: Callable[[str], None] | None = None,
                   on_record: Callable[[str, dict, str], None] | None = None):
    """`tts calibrate`: measure every setting on the problems (resumably, in OUT.runs/), write
    the profile to `out` and where `--strategy auto` finds it for this policy and verifier.
    settings: the run's RunSettings (its search values are the base of every setting);
    batch: BatchSettings. Returns (profile, solver info, saved path). on_record(key, record,
    in flight)."""
    import time

    from .batch import Run, open_runs
    from .profile import saved_profile_path

    def plan_for(budget):
        return candidate_settings(budget, has_verifier=True, beam_widths=beam_widths, aggregations=aggregations,
                                  temperatures=temperatures)

    def run_settings(setting: Setting):  # validated: a bad --aggregations value fails before any model loads
        return settings.but(setting.strategy, **{k: v for k, v in setting.overrides().items() if k != "strategy"})

    plan = calibration_plan(budgets, samples, plan_for)
    workdir = out.parent / (out.name + ".runs")
    paths = run_files(plan, workdir)
    runs = {key: Run(paths[key], run_settings(setting)) for key, setting in plan.items()}
    # every setting a profile may choose must fit the engines, the ones already measured too
    extra = [(r.strategy, r.search) for r in (run_settings(s) for b in budgets for s in plan_for(b))]
    with open_runs(runs, batch, problem_set, say=say, plans=extra, verifier=True) as (files, solver, runs):
        key_of = {setting: key for key, setting in plan.items()}

        def job_for(setting):
            run = runs[key_of[setting]]
            return run.settings.strategy, run.settings.search

        info = solver.info()
        t0 = time.perf_counter()
        profile = calibrate(problem_set.problems, budgets, workdir, samples=samples, has_verifier=True, bins=bins,
                            solve_many=lambda pairs: solver.solve_many(pairs, job_for),
                            policy={"name": info["policy_name"], "file": info["policy"], "params": info["params"]},
                            prm=info["verifier"], settings_for=plan_for, files=files, known_keys=problem_set.keys,
                            on_record=(lambda key, rec: on_record(key, rec, solver.in_flight)) if on_record else None)
    profile.meta.update(seconds=round(time.perf_counter() - t0, 1), samples=samples, difficulty_run=DIFFICULTY)
    profile.save(out)
    saved = saved_profile_path(info["policy"], info["verifier"])
    saved.parent.mkdir(parents=True, exist_ok=True)
    profile.save(saved)
    return profile, info, saved
