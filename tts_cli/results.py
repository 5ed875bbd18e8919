"""Results files: one JSON line per finished problem, appended and fsynced as it finishes,
under a first line that says which run the file belongs to.

The contract (every batch command's files follow it: grade's, compare's and calibrate's run
files, train-prm's rollouts):

- The first line is a header: `{"tts_results": 1, "kind": ..., "run": {...}, "tts_version": ...}`.
  `run` is the configuration that changes answers (strategy, every search setting, the models
  by file name and size, the prompt mode, the seed). Resuming with another configuration stops
  before any model loads, naming the first field that differs; `restart=True` moves the old
  file aside (FILE.1, FILE.2, ...) and starts over. Nothing is ever deleted.
- Records are matched to problems by their `key` (the problem's id and a hash of its text,
  datasets.Problem.key), so a data file that grows or gets a line inserted re-solves nothing.
- tts never rewrites a line it did not write in this run. A damaged line anywhere but the end
  stops the run with `file:line: ...` (nothing is changed); a torn last line (a run killed in
  the middle of a write) is moved to FILE.torn before appending. A file that exists and is not
  a tts results file is refused, and so is a device or the run's own input file.
- A write that fails (a full disk) stops the run with one line saying how many records are
  safely in the file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import signal
import threading
from pathlib import Path
from typing import Callable, Iterable

FORMAT = 1
HEADER_KEY = "tts_results"


class ResultsError(Exception):
    """The results file cannot be used (damaged, another run's, not ours, unwritable): one line."""


class ProblemError(Exception):
    """A failure that belongs to one problem (its prompt does not fit the context, it took down
    the workers that ran it): recorded as that problem's error, and the batch goes on. Any other
    failure stops the run: a configuration error is never recorded as a problem's failure."""


class ProblemFailed(ProblemError):
    """A problem that could not be solved for a reason of its own (on Ray: it took down the
    workers that ran it, again and again)."""


def tts_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tts_cli")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


def finite(value):
    """`value` with every non-finite float replaced by None: results are strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_line(obj) -> str:
    return json.dumps(finite(obj), ensure_ascii=False, allow_nan=False) + "\n"


FIRST_COMPARED = ("strategy", "kind")  # named first: the rest of a run's fields follow from them


def first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """"name: A there, B now" for the first field (sorted, dotted into nested mappings) whose
    value differs; None when the two are the same."""
    for key in sorted(set(old) | set(new), key=lambda k: (k not in FIRST_COMPARED, k)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            inner = first_difference(a, b, name + ".")
            if inner:
                return inner
        elif a != b:
            return f"{name}: {_short(a)} there, {_short(b)} now"
    return None


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_header(obj) -> bool:
    return isinstance(obj, dict) and HEADER_KEY in obj


def _looks_like_old_results(obj) -> bool:
    """A record written by a tts from before run headers."""
    return isinstance(obj, dict) and "id" in obj and ("answer" in obj or "samples" in obj or "error" in obj)


class _Parsed:
    """What a results file holds, read without changing it."""

    def __init__(self, path: Path, data: bytes):
        self.path = path
        self.header: dict | None = None
        self.records: list[dict] = []
        self.old_format = False
        self.torn: tuple[int, bytes] | None = None  # (offset of the torn last line, its bytes)
        self.missing_newline = bool(data) and not data.endswith(b"\n")
        if data.startswith(b"\xef\xbb\xbf"):  # a BOM an editor added
            data_offset = 3
        else:
            data_offset = 0
        lines = data[data_offset:].split(b"\n")
        pos = data_offset
        spans = []
        for raw in lines:
            spans.append((pos, raw))
            pos += len(raw) + 1
        content = [(i, off, raw) for i, (off, raw) in enumerate(spans, start=1) if raw.strip()]
        for index, (lineno, offset, raw) in enumerate(content):
            last = index == len(content) - 1
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                # the last line of a run killed mid-write (the header too, if it was all there was)
                if last and (index > 0 or raw.startswith(b'{"' + HEADER_KEY.encode())):
                    self.torn = (offset, raw)
                    self.missing_newline = False
                    break
                what = "not UTF-8" if isinstance(e, UnicodeDecodeError) else f"not valid JSON: {e.msg}"
                if index == 0:
                    raise ResultsError(f"{path}: exists and is not a tts results file (line 1: {what}); "
                                       "choose another --out")
                raise ResultsError(f"{path}:{lineno}: damaged line ({what}); the records around it are kept. "
                                   "Repair or remove that line, or use another --out")
            if index == 0:
                if _is_header(obj):
                    if obj.get(HEADER_KEY) != FORMAT:
                        raise ResultsError(f"{path}: results format {obj.get(HEADER_KEY)!r}, this tts reads "
                                           f"format {FORMAT}; choose another --out")
                    self.header = obj
                    continue
                if _looks_like_old_results(obj):
                    self.old_format = True
                    return
                raise ResultsError(f"{path}: exists and is not a tts results file (its first line is not a tts "
                                   "results header); choose another --out")
            if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
                kind = type(obj).__name__ if not isinstance(obj, dict) else "object without a key"
                raise ResultsError(f"{path}:{lineno}: not a results record (a JSON {kind}); the records around it "
                                   "are kept. Repair or remove that line, or use another --out")
            self.records.append(obj)


def read_records(path: str | Path) -> list[dict]:
    """The records of a results file (header skipped, a torn last line ignored); for tools and
    tests that read a file another run may still be writing. Raises ResultsError on damage."""
    path = Path(path)
    if not path.exists():
        return []
    return _Parsed(path, path.read_bytes()).records


def read_header(path: str | Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        first = f.readline()
    try:
        obj = json.loads(first.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if _is_header(obj) else None


@contextlib.contextmanager
def interrupts_held(signals=(signal.SIGINT, signal.SIGTERM)):
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to the handlers that were
    in place. Only the main thread may change handlers (and only it runs them); elsewhere, and
    where a handler is not Python's to swap, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, lambda number, frame: arrived.append(number))
    except (ValueError, OSError, TypeError):  # not swappable here: restore what was swapped, run as is
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for number in dict.fromkeys(arrived):
            signal.raise_signal(number)


def check_results_path(path: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse, before anything loads, a results path that is a folder, a device, a file that
    is not writable, or one of the run's own input files."""
    if path.exists():
        if path.is_dir():
            raise ResultsError(f"{path}: is a directory, expected a results file")
        if not path.is_file():
            raise ResultsError(f"{path}: not a regular file (a device or a pipe); results go to a file")
        for other in inputs:
            try:
                if other is not None and Path(other).exists() and path.samefile(other):
                    raise ResultsError(f"{path}: is the run's own input file; results go to another --out")
            except OSError:
                pass
        if not os.access(path, os.W_OK):
            raise ResultsError(f"{path}: the file is not writable")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK)):
        raise ResultsError(f"{path}: the folder is not writable")


def moved_aside(path: Path) -> Path:
    """The first free name FILE.1, FILE.2, ... for an old file set aside."""
    k = 1
    while (aside := path.with_name(f"{path.name}.{k}")).exists():
        k += 1
    return aside


class ResultsFile:
    """One results file, open for appending and owned by this run (an flock while open: a second
    run on it stops naming the process that holds it, or waits with `wait`).

    `run` is this run's configuration (the header's `run`); `kind` names the command's records
    ("grade", "rollouts"). `restart` moves an existing file aside first. `say` hears what was
    done to the file (a torn line moved, a file set aside)."""

    def __init__(self, path: str | Path, run: dict, *, kind: str = "grade", restart: bool = False,
                 wait: bool = False, on_wait: Callable[[str], None] | None = None,
                 say: Callable[[str], None] | None = None, inputs: Iterable[Path] = ()):
        self.path = Path(path)
        self.run, self.kind = run, kind
        self.say = say or (lambda text: None)
        check_results_path(self.path, inputs)
        self._f = self._open_locked(wait, on_wait)
        try:
            parsed = _Parsed(self.path, self._read_all())
            problem = self._mismatch(parsed)
            if problem and parsed.header and not parsed.records and not parsed.torn:
                # a header and no record (a run that stopped before its first problem finished):
                # nothing to lose, so this run's header replaces it
                self._f.truncate(0)
                parsed = _Parsed(self.path, b"")
            elif problem and not restart:
                raise ResultsError(problem + "; use another --out, or --restart to move it aside and start over")
            elif (problem or restart) and (parsed.header or parsed.records or parsed.old_format or parsed.torn):
                self._set_aside(wait, on_wait)
                parsed = _Parsed(self.path, b"")
            self._repair_end(parsed)
        except BaseException:
            self._f.close()
            raise
        # The header goes in with the first record: a run that stops before any problem
        # finishes leaves the file as it found it.
        self._header_pending = parsed.header is None
        self.records: list[dict] = parsed.records
        self.latest: dict[str, dict] = {}
        for rec in self.records:  # the last record of a key wins (a retried error is superseded)
            self.latest[rec["key"]] = rec
        self.duplicates = len(self.records) - len(self.latest)
        self.written = 0  # records this run appended
        self.skipped = 0

    # --- opening -----------------------------------------------------------------------------
    def _open_locked(self, wait, on_wait):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+b")
        except OSError as e:
            raise ResultsError(f"{self.path}: cannot write results ({e.strerror})")
        try:
            _lock(f, self.path, wait, on_wait)
        except BaseException:
            f.close()
            raise
        return f

    def _read_all(self) -> bytes:
        self._f.seek(0)
        return self._f.read()

    def _mismatch(self, parsed: _Parsed) -> str | None:
        if parsed.old_format:
            return f"{self.path}: was written by an older tts, without a run header"
        if parsed.header is None:
            return None
        if parsed.header.get("kind", "grade") != self.kind:
            return f"{self.path}: holds {parsed.header.get('kind')} records, not {self.kind} records"
        diff = first_difference(parsed.header.get("run") or {}, self.run)
        return f"{self.path}: belongs to another run ({diff})" if diff else None

    def _set_aside(self, wait, on_wait) -> None:
        aside = moved_aside(self.path)
        os.rename(self.path, aside)
        self._f.close()  # its lock goes with the old file
        self.say(f"moved {self.path} aside to {aside}; starting it over")
        self._f = self._open_locked(wait, on_wait)

    def _repair_end(self, parsed: _Parsed) -> None:
        """A torn last line goes to FILE.torn (appended, never erased); a last record without its
        newline gets one. Nothing else in the file is touched."""
        if parsed.torn is not None:
            offset, raw = parsed.torn
            torn_path = self.path.with_name(self.path.name + ".torn")
            try:
                with open(torn_path, "ab") as t:
                    t.write(raw + b"\n")
                    t.flush()
                    os.fsync(t.fileno())
                self._f.truncate(offset)
                os.fsync(self._f.fileno())
            except OSError as e:
                raise ResultsError(f"{self.path}: its last line is torn and could not be moved to {torn_path} "
                                   f"({e.strerror}); nothing was changed")
            self.say(f"{self.path}: its last line was torn (a run killed mid-write): moved to {torn_path}")
        elif parsed.missing_newline:
            self._append("\n")

    # --- writing -----------------------------------------------------------------------------
    def _append(self, text: str) -> None:
        try:
            self._f.seek(0, os.SEEK_END)
            self._f.write(text.encode("utf-8"))
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            safe = len(getattr(self, "records", []))
            raise ResultsError(f"{self.path}: cannot write ({e.strerror}); {safe} finished records are safely "
                               "in it, rerun to resume once there is room")

    def header(self) -> dict:
        return {HEADER_KEY: FORMAT, "kind": self.kind, "tts_version": tts_version(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "run": self.run}

    def write(self, rec: dict) -> None:
        """Append one record (it must carry its problem's `key`), flushed and fsynced. A Ctrl-C
        or SIGTERM arriving meanwhile takes effect once the record is both on disk and counted,
        so "N new records" after an interrupt is what the file gained."""
        with interrupts_held():
            if self._header_pending:
                self._append(json_line(self.header()))
                self._header_pending = False
            self._append(json_line(rec))
            self.records.append(rec)
            self.latest[rec["key"]] = rec
            self.written += 1

    # --- what is done --------------------------------------------------------------------------
    def done(self, key: str, retry_errors: bool = False) -> bool:
        """Whether the problem with this key has a record (an error record counts unless
        `retry_errors`)."""
        rec = self.latest.get(key)
        return rec is not None and not (retry_errors and rec.get("error"))

    def close(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass


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


def open_results(runs: dict[str, tuple[Path, dict]], *, kind: str = "grade", restart: bool = False,
                 wait: bool = False, on_wait=None, say=None, inputs: Iterable[Path] = ()) -> dict[str, ResultsFile]:
    """Each run's results file (key -> (path, run configuration)), opened and locked: all of
    them, or none (on a failure the ones opened are closed)."""
    files: dict[str, ResultsFile] = {}
    try:
        for key, (path, run) in runs.items():
            files[key] = ResultsFile(path, run, kind=kind, restart=restart, wait=wait, on_wait=on_wait, say=say,
                                     inputs=inputs)
    except BaseException:
        for f in files.values():
            f.close()
        raise
    return files
