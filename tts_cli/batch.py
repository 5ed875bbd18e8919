"""The batch commands' runs (grade, compare, calibrate): the problems read, every run's results
file opened and checked against the run's configuration (before any model loads), the searches
opened on this machine or on Ray workers, every problem graded under every run, and everything
closed again.

A run is a setting with its own results file; all runs of a command share one stream of
searches (one scheduler, or one queue of Ray workers), problem by problem.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from .datasets import BadLine, Problem, read_all_problems, resolve_data
from .grade import GradeSummary, grade_runs
from .results import ResultsError, ResultsFile, open_results, read_header
from .settings import DRAW_SEED, BatchSettings, ModelSettings, RunSettings, SettingsError, draw_seed, with_seed

Say = Callable[[str], None]


@dataclass
class Run:
    """One setting graded into its own results file."""

    path: Path
    settings: RunSettings
    label: str = ""


@dataclass
class ProblemSet:
    data: Path  # the file read (a data set's name resolved to its file)
    problems: list[Problem]  # the ones to solve (--limit applied)
    bad: list[BadLine]
    keys: set[str]  # every problem key of the file: records of other keys belong to no problem of it


def read_problem_set(data: Path | str, batch: BatchSettings, require_answer: bool = True) -> ProblemSet:
    """The problems of a JSONL file or of a named data set (`gsm8k`: see datasets.resolve_data)."""
    data = resolve_data(data)
    problems, bad = read_all_problems(data, problem_key=batch.problem_key, answer_key=batch.answer_key,
                                      skip_bad=batch.skip_bad, require_answer=require_answer)
    keys = {p.key for p in problems}
    if batch.limit is not None and len(problems) > batch.limit:
        problems = problems[:batch.limit]
        bad = [b for b in bad if b.line < problems[-1].line]
    return ProblemSet(data, problems, bad, keys)


def resolve_seeds(runs: dict[str, Run], say: Say | None = None) -> dict[str, Run]:
    """--seed -1: a run resuming a file takes the seed its header recorded; the others share one
    freshly drawn seed (said, and recorded in their headers)."""
    drawn = None
    out = {}
    for key, run in runs.items():
        if run.settings.search.seed != DRAW_SEED:
            out[key] = run
            continue
        header = read_header(run.path)
        recorded = ((header or {}).get("run") or {}).get("seed")
        if isinstance(recorded, int) and recorded >= 0:
            out[key] = replace(run, settings=with_seed(run.settings, recorded))
            continue
        if drawn is None:
            drawn = draw_seed()
            if say:
                say(f"seed: drew {drawn} (recorded with the results; --seed {drawn} repeats the run)")
        out[key] = replace(run, settings=with_seed(run.settings, drawn))
    return out


def models_of(runs: dict[str, Run]) -> ModelSettings:
    """The models every run of one command shares (one solver serves them all)."""
    first = next(iter(runs.values())).settings.models
    return first


def open_solver(session, plans: list, batch: BatchSettings, say: Say | None = None, verifier: bool = False):
    """The searches of a batch command: solver.LocalSolver, or cluster.RaySolver with --ray.
    `verifier`: open the verifier even if no plan scores steps (calibrate's profile may choose
    a strategy that does)."""
    if batch.ray is None:
        if batch.workers is not None:
            raise SettingsError("--workers goes with --ray")
        from .solver import LocalSolver
        solver = LocalSolver(session, plans, batch.concurrency_value(), verifier)
    else:
        from .cluster import RaySolver
        solver = RaySolver(batch.ray, session.models, plans, batch.concurrency_value(), batch.workers,
                           registry=session.registry, on_status=say, verifier=verifier)
    if say:
        say(solver.describe())
    return solver


@contextmanager
def open_runs(runs: dict[str, Run], batch: BatchSettings, problem_set: ProblemSet, *, inputs: tuple = (),
              kind: str = "grade", say: Say | None = None, plans: list | None = None, verifier: bool = False) -> Iterator[tuple[dict[str, ResultsFile], object, dict]]:
    """The runs' results files, opened, locked and checked against each run's configuration,
    then the solver that runs their searches (plus `plans`, (strategy, config) pairs it must
    also fit; `verifier`: open the verifier even if no run scores steps); both closed at the end. Yields (files, solver, runs: the runs with --seed -1
    resolved). A file that cannot be used stops the command before any model loads."""
    from .solver import Session
    runs = resolve_seeds(runs, say)
    session = Session(models_of(runs), lenient=batch.ray is not None)
    identities = {key: (run.path, session.identity(run.settings.strategy, run.settings.search))
                  for key, run in runs.items()}
    files = open_results(identities, kind=kind, restart=batch.restart, wait=batch.wait, on_wait=say, say=say,
                         inputs=(problem_set.data, *inputs))
    solver = None
    try:
        check_belongs(files, problem_set)
        every = [(r.settings.strategy, r.settings.search) for r in runs.values()] + list(plans or [])
        solver = open_solver(session, every, batch, say, verifier)
        yield files, solver, runs
    finally:
        for f in files.values():
            f.close()
        if solver is not None:
            solver.close()


def check_belongs(files: dict[str, ResultsFile], problem_set: ProblemSet) -> None:
    """A results file none of whose records is a problem of this data file is another data set's:
    refused (its summary would be that data set's)."""
    known = problem_set.keys | {b.key for b in problem_set.bad}
    for f in files.values():
        if f.latest and not any(k in known for k in f.latest):
            raise ResultsError(f"{f.path}: none of its {len(f.latest)} records is a problem of {problem_set.data}; "
                               "it holds another data set's results (use another --out)")


def grade_data(data: Path, runs: dict[str, Run], batch: BatchSettings, *, progress=None,
              say: Say | None = None, inputs: tuple = ()) -> dict[str, GradeSummary]:
    """Grade the data set under each run; returns key -> GradeSummary. `progress` (optional):
    render.GradeProgress or anything with its methods."""
    problem_set = read_problem_set(data, batch)
    progress = progress or _NoProgress()
    with open_runs(runs, batch, problem_set, inputs=inputs, say=say) as (files, solver, runs):
        plans = {key: (run.settings.strategy, run.settings.search) for key, run in runs.items()}
        with progress:
            for key, run in runs.items():
                strategy, cfg = plans[key]
                label = run.label or (strategy if strategy == "cot" else f"{strategy} N={cfg.n}")
                latest = files[key].latest
                progress.add(key, label, len(problem_set.problems),
                             [latest[p.key] for p in problem_set.problems if p.key in latest])
            return grade_runs(problem_set.problems, files, lambda pairs: solver.solve_many(pairs, plans.__getitem__),
                              bad_lines=problem_set.bad, retry_errors=batch.retry_errors, known_keys=problem_set.keys,
                              on_record=lambda key, rec: progress.record(key, rec, solver.in_flight),
                              on_skip=progress.skip)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add(self, *args) -> None:
        pass

    record = skip = add


__all__ = ["ProblemSet", "Run", "check_belongs", "open_runs", "open_solver", "read_problem_set", "resolve_seeds",
           "grade_data"]
