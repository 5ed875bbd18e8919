"""The batch commands' runs (grade, compare, calibrate): their results files locked, their
searches opened on this machine or on Ray workers, every problem graded under every run.

A run is a setting with its own results file; all runs of a command share one stream of
searches (one scheduler, or one queue of Ray workers), problem by problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .datasets import read_problems
from .grade import GradeSummary, grade_runs, open_results
from .search import USES_VERIFIER
from .settings import SettingsError, check_writable, search_config

Say = Callable[[str], None]


def open_solver(settings: dict, plans: list, concurrency: int | None, ray: str | None = None,
                workers: int | None = None, say: Say | None = None):
    """The searches of a batch command: solver.LocalSolver, or cluster.RaySolver with `ray`
    (an address, or "local")."""
    if ray is None:
        if workers is not None:
            raise SettingsError("--workers goes with --ray")
        from .solver import LocalSolver
        solver = LocalSolver(settings, plans, concurrency)
    else:
        from .cluster import RaySolver
        solver = RaySolver(ray, settings, plans, concurrency, workers, on_status=say)
    if say:
        say(solver.describe())
    return solver


def solver_settings(runs_settings: list[dict]) -> dict:
    """The settings a solver opens its models with: the first run's, as a verifier-using
    strategy if any run scores steps (so that the verifier is opened)."""
    first = runs_settings[0]
    uses = any(s["strategy"] in USES_VERIFIER for s in runs_settings)
    return {**first, "strategy": "auto" if uses else first["strategy"]}


def run_grade(data: Path, runs: dict[str, tuple[Path, dict]], *, problem_key=None, answer_key=None, limit=None,
              skip_bad=False, concurrency: int | None = None, ray: str | None = None, workers: int | None = None,
              wait: bool = False, progress=None, say: Say | None = None) -> dict[str, GradeSummary]:
    """Grade the data set under each run (key -> (results path, settings)); returns key ->
    GradeSummary. The results files are locked before any model loads. `progress` (optional):
    render.GradeProgress or anything with its methods."""
    problems, bad = read_problems(data, problem_key=problem_key, answer_key=answer_key, limit=limit,
                                  skip_bad=skip_bad)
    plans = {key: (settings["strategy"], search_config(settings)) for key, (_, settings) in runs.items()}
    for path, _ in runs.values():
        check_writable(path)
    files = open_results({key: path for key, (path, _) in runs.items()}, wait, on_wait=say)
    try:
        solver = open_solver(solver_settings([s for _, s in runs.values()]), list(plans.values()), concurrency,
                             ray, workers, say)
    except BaseException:
        for f in files.values():
            f.close()
        raise
    progress = progress or _NoProgress()
    try:
        with progress:
            for key in runs:
                strategy, cfg = plans[key]
                label = key or (strategy if strategy == "cot" else f"{strategy} N={cfg.n}")
                progress.add(key, label, len(problems), files[key].records)
            return grade_runs(problems, files, lambda pairs: solver.solve_many(pairs, plans.__getitem__),
                              bad_lines=bad, on_record=lambda key, rec: progress.record(key, rec, solver.in_flight),
                              on_skip=progress.skip)
    finally:
        solver.close()


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add(self, *args) -> None:
        pass

    record = skip = add
