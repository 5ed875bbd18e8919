"""Problem sets as JSONL: MATH-500 (problem/answer), AIME24 (id/problem/answer), GSM8K
(question/answer with the final answer after "####"), or any JSONL with --problem-key and
--answer-key. Errors name the file and the line.

Data sets also go by name (`tts grade gsm8k`): DATA_SETS below is their registry, as models.yaml
is the models'. A set is bundled (a file in tts_cli/data/, shipped in the wheel), downloaded
(`tts data pull NAME` wrote it under the data home), or fetchable (not here yet). Why each set
is or is not bundled, with its licence and source: tts_cli/data/README.md."""

from __future__ import annotations

import hashlib
import json
import os
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
    """Every problem of a JSONL file, or of a data set given by name (see resolve_data)."""
    path = resolve_data(path)
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


# --- data sets by name ------------------------------------------------------------------------

BUNDLED_DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class DataSet:
    """One named problem set. `file`: its file in tts_cli/data/ when bundled; `repo`/`repo_file`:
    where `tts data pull` fetches it from on the Hugging Face hub when not."""

    name: str
    title: str
    problems: int
    fields: tuple[str, ...]
    licence: str
    source: str
    file: str | None = None
    repo: str | None = None
    repo_file: str | None = None
    revision: str | None = None  # a commit, so a pull today and a pull next year read the same file
    note: str = ""


_ARITH_SOURCE = "this project: benchmarks/make_arith.py (generated; the repository's own licence)"

DATA_SETS: dict[str, DataSet] = {s.name: s for s in [
    DataSet("arith-test", "generated arithmetic word problems (the README's SmolLM2-135M tables)", 90,
            ("id", "problem", "answer", "level"), "Apache-2.0", _ARITH_SOURCE, file="arith-test.jsonl"),
    DataSet("arith-calib", "generated arithmetic word problems, for `tts calibrate`", 24,
            ("id", "problem", "answer", "level"), "Apache-2.0", _ARITH_SOURCE, file="arith-calib.jsonl"),
    DataSet("arith-train", "arith-calib plus 238 generated problems, for `tts train-prm`", 262,
            ("id", "problem", "answer", "level"), "Apache-2.0", _ARITH_SOURCE, file="arith-train.jsonl"),
    DataSet("stories-test", "arithmetic stories with templates absent from every arith set (transfer checks)", 64,
            ("id", "problem", "answer", "level"), "Apache-2.0",
            "this project: benchmarks/make_stories.py (generated; the repository's own licence)",
            file="stories-test.jsonl"),
    DataSet("mixed-test", "percentages, unit conversions, sharing, clock times, rates (transfer checks)", 60,
            ("id", "problem", "answer", "level"), "Apache-2.0",
            "this project: benchmarks/make_mixed.py (generated; the repository's own licence)",
            file="mixed-test.jsonl"),
    DataSet("gsm8k", "GSM8K test split: grade-school word problems, the answer after ####", 1319,
            ("question", "answer"), "MIT",
            "https://huggingface.co/datasets/openai/gsm8k (main, test) = "
            "https://github.com/openai/grade-school-math grade_school_math/data/test.jsonl",
            file="gsm8k_test.jsonl"),
    DataSet("math500", "MATH-500: the 500 MATH test problems of Let's Verify Step by Step", 500,
            ("problem", "solution", "answer", "subject", "level", "unique_id"), "MIT, disputed",
            "https://huggingface.co/datasets/HuggingFaceH4/MATH-500 (from openai/prm800k math_splits/test.jsonl, "
            "from hendrycks/math)",
            repo="HuggingFaceH4/MATH-500", repo_file="test.jsonl", revision="ff5b20257d8185524591543f8ff5993951537bb8",
            note="not bundled: the MATH authors license it MIT, but Art of Problem Solving claims the problems and "
                 "solutions, and its DMCA notice took hendrycks/competition_math off the hub in January 2025"),
    DataSet("aime24", "AIME 2024 I and II: 30 problems, integer answers 0-999", 30,
            ("id", "problem", "solution", "answer", "url", "year"), "none stated",
            "https://huggingface.co/datasets/HuggingFaceH4/aime_2024 (from AI-MO/aimo-validation-aime, "
            "extracted from the AoPS wiki)",
            repo="HuggingFaceH4/aime_2024", repo_file="data/train-00000-of-00001.parquet",
            note="not bundled: the card states no licence; the problems are the MAA's and the solutions come from "
                 "the AoPS wiki. The hub copy is Parquet: pulling it needs pyarrow (pip install pyarrow)"),
]}


def data_home() -> Path:
    """Where `tts data pull` writes the sets it fetched (XDG_DATA_HOME respected)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tts_cli" / "data"


def local_file(data_set: DataSet) -> Path | None:
    """The set's JSONL on this machine: the bundled file, or the one `tts data pull` wrote."""
    path = BUNDLED_DATA / data_set.file if data_set.file else data_home() / f"{data_set.name}.jsonl"
    return path if path.is_file() else None


def where(data_set: DataSet) -> str:
    """bundled, downloaded, or fetchable (`tts data pull` would get it)."""
    if data_set.file:
        return "bundled"
    return "downloaded" if local_file(data_set) else "fetchable"


def data_set_named(name: str) -> DataSet:
    if name not in DATA_SETS:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(DATA_SETS)} (`tts data list`)")
    return DATA_SETS[name]


def resolve_data(name_or_path: str | Path) -> Path:
    """A data argument -> the JSONL file to read. A path that exists always wins; otherwise a known
    name is its set's file; a bare word that is neither is an error that lists the names."""
    path = Path(name_or_path)
    name = str(name_or_path)
    if path.exists():
        return path
    if name in DATA_SETS:
        data_set = DATA_SETS[name]
        found = local_file(data_set)
        if found is not None:
            return found
        if data_set.file:
            raise DataError(f"{name}: its bundled file {BUNDLED_DATA / data_set.file} is missing (reinstall tts_cli)")
        raise DataError(f"{name} is not downloaded: run `tts data pull {name}`")
    if os.sep not in name and "/" not in name and not path.suffix:
        raise DataError(f"{name}: no such file, and no data set of that name; known: {', '.join(DATA_SETS)} "
                        "(`tts data list`)")
    return path  # a missing file: read_all_problems says so, naming it


def pull(data_set: DataSet) -> Path:
    """Fetch a set that is not bundled from the Hugging Face hub (into the hub cache, resumable)
    and write it as the JSONL tts reads into data_home(); a bundled set is already here."""
    if data_set.file:
        return BUNDLED_DATA / data_set.file
    from huggingface_hub import hf_hub_download
    try:
        fetched = Path(hf_hub_download(data_set.repo, data_set.repo_file, repo_type="dataset",
                                       revision=data_set.revision))
    except Exception as e:  # network, a moved file, auth: one line for the user
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"{data_set.name}: download of {data_set.repo_file} from {data_set.repo} failed: "
                        f"{type(e).__name__}: {first}")
    out = data_home() / f"{data_set.name}.jsonl"
    partial = out.with_name(out.name + ".partial")  # a killed pull leaves no half-written set behind
    content = _as_jsonl(data_set, fetched)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(content)
    except OSError as e:
        raise DataError(f"{data_set.name}: cannot write {partial} ({e.strerror})")
    try:
        read_all_problems(partial)  # what tts cannot read is not kept
    except DataError as e:
        partial.unlink()
        raise DataError(f"{data_set.name}: the file fetched from {data_set.repo} is not a problem set tts reads: {e}")
    partial.replace(out)
    return out


def _as_jsonl(data_set: DataSet, fetched: Path) -> bytes:
    """A fetched file as JSON lines: JSONL as it is, Parquet converted row by row (with pyarrow)."""
    if fetched.suffix != ".parquet":
        return fetched.read_bytes()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{data_set.name}: {data_set.repo} ships Parquet, and reading it needs pyarrow "
                        "(pip install pyarrow)")
    try:
        rows = pq.read_table(fetched).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's errors for a damaged or truncated file
        raise DataError(f"{data_set.name}: {fetched.name} from {data_set.repo} is not readable Parquet: {e}")
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
