"""Problem sets as JSONL: MATH-500 (problem/answer), AIME24 (id/problem/answer), GSM8K
(question/answer with the final answer after "####"), or any JSONL with --problem-key and
--answer-key. Errors name the file and the line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Prompts longer than this are cut (and the result says so): a 100 KB "problem" is a mistake,
# and would not fit a small model's context anyway.
MAX_PROBLEM_CHARS = 8000


class DataError(Exception):
    """Bad dataset input; the message starts with file:line."""


@dataclass
class Problem:
    id: str
    problem: str
    answer: str | None
    line: int
    level: object = None
    subject: object = None
    notes: list[str] = field(default_factory=list)


@dataclass
class BadLine:
    line: int
    error: str


def _reference(row: dict, key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    text = str(value)
    if "####" in text:  # GSM8K: a worked solution, then "#### 1,234"
        return text.split("####")[-1].strip().replace(",", "")
    return text.strip()


def read_problems(path: str | Path, *, problem_key: str | None = None, answer_key: str | None = None,
                  limit: int | None = None, skip_bad: bool = False,
                  require_answer: bool = True) -> tuple[list[Problem], list[BadLine]]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: binary file, expected JSON lines")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text")
    problems: list[Problem] = []
    bad: list[BadLine] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            problems.append(_parse(path, n, line, problem_key, answer_key, require_answer))
        except DataError as e:
            if not skip_bad:
                raise
            bad.append(BadLine(n, str(e)))
        if limit is not None and len(problems) >= limit:
            break
    if not problems and not bad:
        raise DataError(f"{path}: no problems in the file")
    return problems, bad


def _parse(path: Path, n: int, line: str, problem_key, answer_key, require_answer) -> Problem:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})")
    if not isinstance(row, dict):
        raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
    pkey = problem_key or next((k for k in ("problem", "question") if k in row), None)
    if pkey is None or pkey not in row:
        raise DataError(f"{path}:{n}: no problem field ({problem_key or 'problem/question'}); keys are "
                        f"{', '.join(sorted(row)) or 'none'} (use --problem-key)")
    akey = answer_key or "answer"
    if require_answer and akey not in row:
        raise DataError(f"{path}:{n}: no answer field ({akey}); keys are {', '.join(sorted(row))} (use --answer-key)")
    problem = str(row[pkey])
    notes = []
    if len(problem) > MAX_PROBLEM_CHARS:
        notes.append(f"problem text of {len(problem)} characters cut to {MAX_PROBLEM_CHARS}")
        problem = problem[:MAX_PROBLEM_CHARS]
    pid = row.get("id", row.get("unique_id", f"line-{n}"))
    return Problem(id=str(pid), problem=problem, answer=_reference(row, akey), line=n,
                   level=row.get("level"), subject=row.get("subject") or row.get("type"), notes=notes)
