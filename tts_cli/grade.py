"""Grading a problem set under one or more runs, each into its own results file (results.py):
every problem not yet recorded is solved, its record appended as it finishes; the summaries
count the records of this data set's problems alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .answers import answers_match
from .datasets import BadLine, Problem
from .engine import PromptTooLong, Terminated
from .results import ProblemError, ResultsFile
from .search import SearchResult

# A search failure that is the problem's, not the run's: recorded as an error line, and the
# batch goes on. Anything else (a configuration error, a bug) stops the run.
PROBLEM_ERRORS = (ProblemError, PromptTooLong)


def candidate_record(c) -> dict:
    """A finished candidate as results files keep it: enough to choose again without generating
    (its steps' texts, their scores and the policy's confidence in each: `tts rescore`) and to
    see how it ended) and its generated tokens (what stopping early saves: pools.adaptive)."""
    out = {"answer": c.answer, "score": c.score, "finish_reason": c.finish_reason, "steps": c.steps,
           "step_scores": c.step_scores, "step_confidence": c.step_confidence, "answer_method": c.answer_method,
           "tokens": c.tokens}
    if c.branch is not None:  # DVTS: its subtree (pools.subtrees)
        out["branch"] = c.branch
    if c.repaired_from is not None:  # --repair: the answer the path stated
        out["repaired_from"] = c.repaired_from
    return out


def record_for(problem: Problem, result: SearchResult | None, error: str | None = None) -> dict:
    rec = {"key": problem.key, "id": problem.id, "line": problem.line, "problem": problem.problem,
           "reference": problem.answer}
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
        candidates=[candidate_record(c) for c in result.candidates],
        no_answer=sum(1 for c in result.candidates if c.answer is None),
        compute=result.compute,
        config=result.config,
        notes=problem.notes + result.notes,
        seconds=result.compute.get("seconds"),
    )
    if result.saved is not None:  # strategies that stop early say what they did not spend
        rec["saved"] = result.saved
    return rec


def bad_line_record(bad: BadLine) -> dict:
    return {"key": bad.key, "id": f"line-{bad.line}", "line": bad.line, "error": bad.error, "correct": False,
            "answer": None}


@dataclass
class GradeSummary:
    records: list[dict]  # one per problem of this run (the latest record of each), in data order
    skipped: int = 0  # already in the file
    interrupted: str | None = None  # "interrupted" (Ctrl-C) or "terminated" (SIGTERM)
    foreign: int = 0  # records in the file that belong to no problem of this data set
    duplicates: int = 0  # records superseded by a later one of the same problem
    written: int = 0  # records this run appended
    regraded: int = 0  # records graded again against a reference that changed since

    @property
    def graded(self) -> list[dict]:
        return [r for r in self.records if r.get("correct") is not None and not r.get("error")]

    @property
    def accuracy(self) -> float | None:
        g = self.graded
        return sum(bool(r["correct"]) for r in g) / len(g) if g else None


SolveMany = Callable[[Iterable[tuple[str, Problem]]], Iterator[tuple[tuple[str, Problem], object]]]


def grade_runs(problems: list[Problem], files: dict[str, ResultsFile], solve_many: SolveMany, *,
               bad_lines: list[BadLine] = (), retry_errors: bool = False,
               on_record: Callable[[str, dict], None] | None = None,
               on_skip: Callable[[str, int], None] | None = None,
               known_keys: set[str] | None = None) -> dict[str, GradeSummary]:
    """Grade every problem under every run (a run: a setting with its own results file, opened
    with results.open_results; closed at the end).

    `solve_many` gets (run, problem) pairs, problem by problem (so one problem's runs are in
    flight together and share its prompt), and yields ((run, problem), SearchResult or
    exception) as each search ends, in any order. Each record is appended as it arrives.
    `known_keys`: every problem key of the data file (records of other problems are foreign)."""
    interrupted = None

    def write(key, rec):
        files[key].write(rec)
        if on_record:
            on_record(key, rec)

    def todo():
        for problem in problems:
            for key, rf in files.items():
                if rf.done(problem.key, retry_errors):
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
                if not rf.done(bad.key):
                    write(key, bad_line_record(bad))
        for (key, problem), out in solve_many(todo()):
            if isinstance(out, BaseException):
                if not isinstance(out, PROBLEM_ERRORS):
                    raise out
                write(key, record_for(problem, None, error=str(out)))
                continue
            write(key, record_for(problem, out))
    except KeyboardInterrupt as e:
        interrupted = "terminated" if isinstance(e, Terminated) else "interrupted"
    finally:
        for f in files.values():
            f.close()
    known = known_keys if known_keys is not None else {p.key for p in problems}
    known |= {b.key for b in bad_lines}
    return {key: summary_of(f, problems, bad_lines, known, interrupted) for key, f in files.items()}


def summary_of(f: ResultsFile, problems: list[Problem], bad_lines, known: set[str],
               interrupted: str | None = None) -> GradeSummary:
    """The summary of one run: the latest record of each of `problems` (and of the bad lines),
    graded again where the data set's reference answer changed since it was written."""
    records, regraded = [], 0
    for p in problems:
        rec = f.latest.get(p.key)
        if rec is None:
            continue
        if not rec.get("error") and rec.get("reference") != p.answer and p.answer is not None:
            rec = {**rec, "reference": p.answer, "correct": answers_match(rec.get("answer"), p.answer)}
            regraded += 1
        records.append(rec)
    records += [f.latest[b.key] for b in bad_lines if b.key in f.latest]
    foreign = sum(1 for k in f.latest if k not in known)
    return GradeSummary(records=records, skipped=f.skipped, interrupted=interrupted, foreign=foreign,
                        duplicates=f.duplicates, written=f.written, regraded=regraded)


def summarize(records: list[dict]) -> dict:
    """Accuracy overall and by level and subject, with tokens, FLOPs and engine time."""
    graded = [r for r in records if r.get("correct") is not None and not r.get("error")]

    def acc(rs):
        return round(sum(bool(r["correct"]) for r in rs) / len(rs), 4) if rs else None

    out = {"problems": len(records), "graded": len(graded), "errors": sum(1 for r in records if r.get("error")),
           "accuracy": acc(graded), "pass_at_n": pass_at_n(graded),
           "no_answer": sum(r.get("no_answer", 0) for r in graded),
           "candidates": sum(len(r.get("candidates") or []) for r in graded)}
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


__all__ = ["GradeSummary", "PROBLEM_ERRORS", "SolveMany", "any_candidate_correct", "bad_line_record",
           "candidate_record", "grade_runs", "pass_at_n", "record_for", "summarize", "summary_of"]
