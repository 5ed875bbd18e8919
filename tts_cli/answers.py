"""Final answers: extracting them from a solution, and deciding whether two are the same.

`answers_match` is the one equivalence test that voting and grading share. It tries cheap
normalised string equality first, then math-verify (which parses LaTeX into sympy), under a time
limit so that no answer can hang a run.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

MATCH_TIMEOUT_S = 3


@dataclass(frozen=True)
class Extracted:
    answer: str | None
    method: str | None  # "boxed", or a fallback: "answer_is", "last_number"; None when nothing found

    @property
    def is_fallback(self) -> bool:
        return self.method not in (None, "boxed")


def last_boxed(text: str) -> str | None:
    """Content of the last brace-matched \\boxed{...} (or \\fbox{...}) in text."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        i = start
        while i < len(text):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
            i += 1
    return None


def has_boxed_answer(text: str) -> bool:
    return last_boxed(text) is not None


_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*\$?([^\n$]+?)\$?\s*(?:\.\s|\.?$|\n)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


_LEADING_NUMBER = re.compile(r"^(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s+[A-Za-z]")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")  # a word, not a LaTeX command (\frac) or a variable


def as_math(text: str) -> str | None:
    """`text` if it is a number or a math expression ("42", "x = 5", "\\frac{1}{2}", "3/4"), its
    leading number if words follow it ("12 apples"), else None (a sentence is not an answer)."""
    s = text.strip().strip("$").strip()
    s = re.sub(r"^\\\(|\\\)$", "", s).strip().rstrip(".").strip()
    if not s:
        return None
    m = _LEADING_NUMBER.match(s)
    if m:
        return m.group(1).rstrip(",")
    return None if _WORD.search(s) else s


def extract_answer(text: str) -> Extracted:
    """The final answer: the last \\boxed{}; else, as fallbacks, what follows the last "answer
    is" when that is a number or an expression, else the last number. Nothing else: a
    sentence is never an answer to vote on or grade."""
    boxed = last_boxed(text)
    if boxed is not None:
        return Extracted(boxed, "boxed")
    m = None
    for m in _ANSWER_IS.finditer(text):
        pass
    if m is not None and (answer := as_math(m.group(1))) is not None:
        return Extracted(answer, "answer_is")
    numbers = _NUMBER.findall(text)
    if numbers:
        return Extracted(numbers[-1].rstrip(","), "last_number")
    return Extracted(None, None)


def normalize(answer: str) -> str:
    """Cheap canonical form: enough to group most identical answers without sympy."""
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", s)
    s = re.sub(r"\\(?:mathrm|textbf|mathbf)\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s).replace("°", "")
    s = s.replace(" ", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        neg = s.startswith("-")
        digits = s.lstrip("-")
        if "." in digits:
            digits = digits.rstrip("0").rstrip(".")
        digits = digits.lstrip("0") or "0"
        if digits.startswith("."):
            digits = "0" + digits
        s = ("-" if neg and digits != "0" else "") + digits
    return s


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """True when two final answers are mathematically the same ("\\frac12", "\\dfrac{1}{2}" and
    "0.5" are; "(1,2)" and "(2,1)" are not)."""
    if predicted is None or reference is None:
        return False
    a, b = normalize(predicted), normalize(reference)
    if not a or not b:
        return False
    if a == b:
        return True
    return _math_verify(a, b)


@lru_cache(maxsize=65536)
def _math_verify(predicted: str, reference: str) -> bool:
    # math-verify's own timeouts use signals, which only work in a main thread: elsewhere (the
    # search thread of `tts serve`) the check runs in a child process whose main thread has
    # them, so an answer such as 9^{9^{9}} cannot hang the caller.
    if threading.current_thread() is threading.main_thread():
        return _math_verify_timed(predicted, reference)
    return _ISOLATED.check(predicted, reference)


def _math_verify_timed(predicted: str, reference: str) -> bool:
    """math-verify with its timeouts: call it on a main thread only."""
    from math_verify import parse, verify

    try:
        gold = parse(f"${reference}$", parsing_timeout=MATCH_TIMEOUT_S)
        pred = parse(f"${predicted}$", parsing_timeout=MATCH_TIMEOUT_S)
        if not gold or not pred:
            return False
        return bool(verify(gold, pred, timeout_seconds=MATCH_TIMEOUT_S))
    except Exception:  # a malformed answer (or one past the time limit) is simply not a match
        return False


def _check_forever(conn) -> None:
    """The child process: answer (predicted, reference) pairs until the pipe closes."""
    import math_verify  # noqa: F401  (imported before saying ready: the first check is not slower)
    conn.send("ready")
    while True:
        try:
            predicted, reference = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_math_verify_timed(predicted, reference))


class _IsolatedVerifier:
    """math-verify in one child process (spawned, not forked: the parent has engine threads),
    for callers off the main thread. Checks take turns; a child that does not answer within
    its own time limits plus a margin is killed and the pair counts as no match."""

    START_S = 120.0  # importing sympy on a loaded machine
    MARGIN_S = 2.0

    def __init__(self):
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_check_forever, args=(child,), daemon=True, name="tts-answer-check")
        proc.start()
        child.close()
        if not parent.poll(self.START_S) or parent.recv() != "ready":
            proc.kill()
            raise RuntimeError("the answer-checking process did not start")
        self._proc, self._conn = proc, parent

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        self._proc = self._conn = None

    def check(self, predicted: str, reference: str) -> bool:
        with self._lock:
            try:
                if self._proc is None or not self._proc.is_alive():
                    self._start()
                self._conn.send((predicted, reference))
                # parse twice and verify: three limits of MATCH_TIMEOUT_S at most
                if self._conn.poll(3 * MATCH_TIMEOUT_S + self.MARGIN_S):
                    return bool(self._conn.recv())
            except (OSError, EOFError, RuntimeError):
                pass
            self._stop()
            return False


_ISOLATED = _IsolatedVerifier()
