"""Problem sets as JSONL: MATH-500 (problem/answer), AIME24 (id/problem/answer), GSM8K
(question/answer with the final answer after "####"), or any JSONL with --problem-key and
--answer-key. Errors name the file and the line."""

from __future__ import annotations

import hashlib
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
    # What results records are matched by: the data's own id (when it has one) and a hash of the
    # text, so a data file that grows or gets a line inserted keeps every problem's key.
    key: str = ""

    def __post_init__(self):
        if not self.key:
            self.key = f"{self.id}:{text_hash(self.problem)}"


@dataclass
class BadLine:
    line: int
    error: str
    key: str = ""  # a hash of the line's bytes: its error record is not written twice


def text_hash(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:16]


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
    """The problems of a JSONL file (UTF-8, with or without a BOM, LF or CRLF lines), the first
    `limit` of them. A bad line is an error naming the file and the line, or with `skip_bad`
    a BadLine (undecodable bytes included)."""
    problems, bad = read_all_problems(path, problem_key=problem_key, answer_key=answer_key, skip_bad=skip_bad,
                                      require_answer=require_answer)
    if limit is not None:
        problems = problems[:limit]
        last = problems[-1].line if problems else 0
        bad = [b for b in bad if b.line < last] if len(problems) == limit else bad
    return problems, bad


def read_all_problems(path: str | Path, *, problem_key: str | None = None, answer_key: str | None = None,
                      skip_bad: bool = False, require_answer: bool = True) -> tuple[list[Problem], list[BadLine]]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})")
    if raw.startswith(b"\xef\xbb\xbf"):  # a BOM, as some editors write
        raw = raw[3:]
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: binary file, expected JSON lines")
    problems: list[Problem] = []
    bad: list[BadLine] = []
    seen: dict[str, int] = {}
    for n, line_bytes in enumerate(raw.split(b"\n"), start=1):
        if not line_bytes.strip():
            continue
        try:
            try:
                line = line_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}:{n}: not UTF-8 text")
            problem = _parse(path, n, line, problem_key, answer_key, require_answer)
        except DataError as e:
            if not skip_bad:
                raise
            bad.append(BadLine(n, str(e), key="bad:" + text_hash(line_bytes)))
            continue
        base = problem.key
        seen[base] = seen.get(base, 0) + 1
        problem.key = base if seen[base] == 1 else f"{base}:{seen[base]}"  # the same problem twice
        problems.append(problem)
    if not problems and not bad:
        raise DataError(f"{path}: no problems in the file")
    return problems, bad


def _text_field(path: Path, n: int, row: dict, key: str) -> str:
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = "null" if value is None else type(value).__name__
        raise DataError(f"{path}:{n}: field {key!r} must be text, got {kind}")
    return str(value)


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
    if not isinstance(row[pkey], str):
        kind = "null" if row[pkey] is None else type(row[pkey]).__name__
        raise DataError(f"{path}:{n}: field {pkey!r} must be a string (the problem text), got {kind}")
    if akey in row and (row[akey] is not None or require_answer):
        _text_field(path, n, row, akey)
    problem = row[pkey]
    notes = []
    if len(problem) > MAX_PROBLEM_CHARS:
        notes.append(f"problem text of {len(problem)} characters cut to {MAX_PROBLEM_CHARS}")
        problem = problem[:MAX_PROBLEM_CHARS]
    pid = row.get("id", row.get("unique_id"))
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (str, int))):
        raise DataError(f"{path}:{n}: field 'id' must be a string or an integer, got {type(pid).__name__}")
    return Problem(id=str(pid) if pid is not None else f"line-{n}", problem=problem,
                   answer=_reference(row, akey), line=n, level=row.get("level"),
                   subject=row.get("subject") or row.get("type"), notes=notes,
                   key=f"{pid if pid is not None else ''}:{text_hash(problem)}")
