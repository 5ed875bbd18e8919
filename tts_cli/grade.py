"""Grading a problem set into a results file, one JSON line per problem, resumable.

Each finished problem is appended and flushed at once, so a killed run loses at most the
problems in flight (several with --concurrency; records come in the order problems finish).
Rerunning with the same file skips what is there; a half-written last line (the kill came
mid-write) is dropped and that problem is redone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .datasets import BadLine, Problem
from .engine import EngineError
from .grading import answers_match
from .search import SearchResult


class ResultsError(Exception):
    """The results file cannot be used (unwritable, or not ours)."""


def read_results(path: Path) -> list[dict]:
    """Finished records in `path`; truncates a torn last line so that appends stay valid."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records = []
    good_end = 0
    pos = 0
    for raw in data.split(b"\n"):
        end = pos + len(raw) + 1
        if raw.strip():
            try:
                records.append(json.loads(raw))
                good_end = min(end, len(data))
            except json.JSONDecodeError:
                break  # a torn write: everything from here is dropped
        else:
            good_end = min(end, len(data))
        pos = end
    if good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    if good_end > 0 and not data[:good_end].endswith(b"\n"):
        with open(path, "ab") as f:
            f.write(b"\n")
    return records


def record_for(problem: Problem, result: SearchResult | None, error: str | None = None) -> dict:
    rec = {"id": problem.id, "line": problem.line, "problem": problem.problem, "reference": problem.answer}
    if problem.level is not None:
        rec["level"] = problem.level
    if problem.subject is not None:
        rec["subject"] = problem.subject
    if result is None:
        rec.update(answer=None, correct=False, error=error)
        return rec
    rec.update(
        answer=result.answer,
        correct=answers_match(result.answer, problem.answer) if problem.answer is not None else None,
        strategy=result.strategy,
        verifier=result.verifier,
        votes=result.votes,
        candidates=[{"answer": c.answer, "score": c.score, "finish_reason": c.finish_reason,
                     "steps": len(c.steps)} for c in result.candidates],
        compute=result.compute,
        config=result.config,
        notes=problem.notes + result.notes,
    )
    if result.saved is not None:  # strategies that stop early say what they did not spend
        rec["saved"] = result.saved
    return rec


@dataclass
class GradeSummary:
    records: list[dict]
    skipped: int  # already in the file
    interrupted: bool

    @property
    def graded(self) -> list[dict]:
        return [r for r in self.records if r.get("correct") is not None and not r.get("error")]

    @property
    def accuracy(self) -> float | None:
        g = self.graded
        return sum(bool(r["correct"]) for r in g) / len(g) if g else None


class ResultsFile:
    """One results file, open for appending and owned by this run: what it holds already, and
    each new record written and fsynced at once.

    The file is locked (flock) while open, so two runs on one file cannot both solve its
    problems and append duplicates: the second stops with a one-line error naming the process
    that holds it, or, with `wait`, blocks until that run ends (`on_wait` hears why first)."""

    def __init__(self, path: Path, wait: bool = False, on_wait: Callable[[str], None] | None = None):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise ResultsError(f"{self.path}: cannot write results ({e.strerror})")
        try:
            _lock(self._f, self.path, wait, on_wait)
            self.records = read_results(self.path)  # under the lock: it may cut a torn last line
        except BaseException:
            self._f.close()
            raise
        self.done = {(r.get("id"), r.get("line")) for r in self.records}
        self.skipped = 0

    def has(self, problem: Problem) -> bool:
        return (problem.id, problem.line) in self.done

    def write(self, rec: dict) -> None:
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.records.append(rec)
        self.done.add((rec.get("id"), rec.get("line")))

    def close(self) -> None:
        self._f.close()


class ProblemFailed(Exception):
    """A problem that could not be solved for a reason of its own (on Ray: it took down the
    workers that ran it, again and again)."""


def _lock(f, path: Path, wait: bool, on_wait) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        holder = lock_holder(f.fileno())
    if not wait:
        raise ResultsError(f"{path}: in use by another tts run ({holder}); wait for it to end, stop it, "
                           "or add --wait to start when it ends")
    if on_wait:
        on_wait(f"{path} is in use by another tts run ({holder}); waiting for it to end")
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def lock_holder(fd: int) -> str:
    """"process PID" holding an flock on the open file `fd`, from /proc/locks (Linux)."""
    inode = os.fstat(fd).st_ino
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode) and f[4] != str(os.getpid()):
            return f"process {f[4]}"
    return "another process"


# A search failure that is the problem's, not the run's: recorded as an error line, and the
# batch goes on (a prompt too long for the context, an impossible option for this problem).
PROBLEM_ERRORS = (ValueError, EngineError, ProblemFailed)

def open_results(runs: dict[str, Path | ResultsFile], wait: bool = False,
                 on_wait: Callable[[str], None] | None = None) -> dict[str, ResultsFile]:
    """Each run's results file, opened and locked (all of them, or none: on a failure the ones
    opened are closed)."""
    files: dict[str, ResultsFile] = {}
    try:
        for key, path in runs.items():
            files[key] = path if isinstance(path, ResultsFile) else ResultsFile(path, wait, on_wait)
    except BaseException:
        for f in files.values():
            f.close()
        raise
    return files


SolveMany = Callable[[Iterable[tuple[str, Problem]]], Iterator[tuple[tuple[str, Problem], object]]]


def grade_runs(problems: Iterable[Problem], runs: dict[str, Path | ResultsFile], solve_many: SolveMany, *,
               bad_lines: list[BadLine] = (), on_record: Callable[[str, dict], None] | None = None,
               on_skip: Callable[[str, int], None] | None = None, wait: bool = False,
               on_wait: Callable[[str], None] | None = None) -> dict[str, GradeSummary]:
    """Grade every problem under every run (a run: a setting with its own results file, given
    by path or already opened with `open_results`; closed at the end).

    `solve_many` gets (run, problem) pairs, problem by problem (so one problem's runs are in
    flight together and share its prompt), and yields ((run, problem), SearchResult or
    exception) as each search ends, in any order. Each record is appended as it arrives.
    """
    files = open_results(runs, wait, on_wait)
    interrupted = False

    def write(key, rec):
        files[key].write(rec)
        if on_record:
            on_record(key, rec)

    def todo():
        for problem in problems:
            for key, rf in files.items():
                if rf.has(problem):
                    rf.skipped += 1
                    if on_skip:
                        on_skip(key, 1)
                elif not problem.problem.strip():
                    write(key, record_for(problem, None, error="empty problem text"))
                else:
                    yield key, problem

    try:
        for bad in bad_lines:  # --skip-bad: recorded as errors, once
            for key, rf in files.items():
                if (f"line-{bad.line}", bad.line) not in rf.done:
                    write(key, {"id": f"line-{bad.line}", "line": bad.line, "error": bad.error, "correct": False,
                                "answer": None})
        for (key, problem), out in solve_many(todo()):
            if isinstance(out, BaseException):
                if not isinstance(out, PROBLEM_ERRORS):
                    raise out
                write(key, record_for(problem, None, error=str(out)))
                continue
            rec = record_for(problem, out)
            rec["seconds"] = out.compute.get("seconds")
            write(key, rec)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for f in files.values():
            f.close()
    return {key: GradeSummary(records=f.records, skipped=f.skipped, interrupted=interrupted)
            for key, f in files.items()}


def grade(problems: Iterable[Problem], out: Path, solve_many: SolveMany, *, bad_lines: list[BadLine] = (),
          on_record: Callable[[dict], None] | None = None,
          on_skip: Callable[[int], None] | None = None) -> GradeSummary:
    """Grade into one results file (`grade_runs` with one run, named "")."""
    return grade_runs(problems, {"": out}, solve_many, bad_lines=bad_lines,
                      on_record=(lambda k, r: on_record(r)) if on_record else None,
                      on_skip=(lambda k, n: on_skip(n)) if on_skip else None)[""]


def summarize(records: list[dict]) -> dict:
    """Accuracy overall and by level and subject, with tokens, FLOPs and engine time."""
    graded = [r for r in records if r.get("correct") is not None and not r.get("error")]

    def acc(rs):
        return round(sum(bool(r["correct"]) for r in rs) / len(rs), 4) if rs else None

    out = {"problems": len(records), "graded": len(graded), "errors": sum(1 for r in records if r.get("error")),
           "accuracy": acc(graded), "pass_at_n": pass_at_n(graded)}
    for key in ("level", "subject"):
        groups: dict = {}
        for r in graded:
            if r.get(key) is not None:
                groups.setdefault(str(r[key]), []).append(r)
        if groups:
            out[f"by_{key}"] = {k: {"n": len(v), "accuracy": acc(v)} for k, v in sorted(groups.items())}
    # seconds: the engines' time each problem was charged (a decode shared by several problems is
    # split between them), so it adds up to the engines' busy time whatever the concurrency; a
    # record's own "seconds" is its wall time in flight.
    flops = tokens = seconds = 0.0
    for r in graded:
        c = r.get("compute", {})
        flops += c.get("flops", 0.0)
        for part in ("policy", "verifier"):
            tokens += c.get(part, {}).get("tokens_evaluated", 0)
            seconds += c.get(part, {}).get("seconds", 0.0)
    out.update(flops=flops, tokens=int(tokens), seconds=round(seconds, 2),
               flops_per_problem=flops / len(graded) if graded else None)
    return out


def any_candidate_correct(record: dict) -> bool:
    """Whether any finished candidate of a graded record reached the reference answer."""
    ref = record.get("reference")
    return ref is not None and any(answers_match(c.get("answer"), ref) for c in record.get("candidates") or [])


def pass_at_n(graded: list[dict]) -> float | None:
    """pass@N (oracle): the share of problems where any finished candidate is right, the accuracy
    a perfect verifier would reach with these candidates. Next to the accuracy it tells whether
    the policy (nothing right to find) or the verifier (a right answer not chosen) falls short."""
    if not graded:
        return None
    return round(sum(any_candidate_correct(r) for r in graded) / len(graded), 4)
