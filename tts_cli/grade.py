"""Grading a problem set into a results file, one JSON line per problem, resumable.

Each finished problem is appended and flushed at once, so a killed run loses at most the problem
it was working on. Rerunning with the same file skips what is there; a half-written last line
(the kill came mid-write) is dropped and that problem is redone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .datasets import BadLine, Problem
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


def grade(problems: Iterable[Problem], out: Path, solve: Callable[[Problem], SearchResult], *,
          bad_lines: list[BadLine] = (), on_record: Callable[[dict], None] | None = None,
          on_skip: Callable[[int], None] | None = None) -> GradeSummary:
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        existing = read_results(out)
        f = open(out, "a", encoding="utf-8")
    except OSError as e:
        raise ResultsError(f"{out}: cannot write results ({e.strerror})")
    done = {(r.get("id"), r.get("line")) for r in existing}
    records = list(existing)
    skipped = 0
    interrupted = False

    def write(rec):
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
        records.append(rec)
        if on_record:
            on_record(rec)

    try:
        for bad in bad_lines:  # --skip-bad: recorded as errors, once
            if (f"line-{bad.line}", bad.line) not in done:
                write({"id": f"line-{bad.line}", "line": bad.line, "error": bad.error, "correct": False,
                       "answer": None})
        for problem in problems:
            if (problem.id, problem.line) in done:
                skipped += 1
                if on_skip:
                    on_skip(1)
                continue
            if not problem.problem.strip():
                write(record_for(problem, None, error="empty problem text"))
                continue
            t0 = time.perf_counter()
            result = solve(problem)
            rec = record_for(problem, result)
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            write(rec)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        f.close()
    return GradeSummary(records=records, skipped=skipped, interrupted=interrupted)


def summarize(records: list[dict]) -> dict:
    """Accuracy overall and by level and subject, with tokens, FLOPs and time."""
    graded = [r for r in records if r.get("correct") is not None and not r.get("error")]

    def acc(rs):
        return round(sum(bool(r["correct"]) for r in rs) / len(rs), 4) if rs else None

    out = {"problems": len(records), "graded": len(graded), "errors": sum(1 for r in records if r.get("error")),
           "accuracy": acc(graded)}
    for key in ("level", "subject"):
        groups: dict = {}
        for r in graded:
            if r.get(key) is not None:
                groups.setdefault(str(r[key]), []).append(r)
        if groups:
            out[f"by_{key}"] = {k: {"n": len(v), "accuracy": acc(v)} for k, v in sorted(groups.items())}
    flops = tokens = seconds = 0.0
    for r in graded:
        c = r.get("compute", {})
        flops += c.get("flops", 0.0)
        seconds += c.get("seconds", 0.0)
        for part in ("policy", "verifier"):
            tokens += c.get(part, {}).get("tokens_evaluated", 0)
    out.update(flops=flops, tokens=int(tokens), seconds=round(seconds, 2),
               flops_per_problem=flops / len(graded) if graded else None)
    return out
