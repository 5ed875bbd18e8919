"""The coverage verifier: does a path's arithmetic use the numbers the problem gives?

A word problem's numbers are there to be used. A small policy's wrong paths often compute
correctly with some of them and leave the rest out ("5 dumplings at 4 dollars each and a drink
for 14 dollars" -> "5 * 4 = 20"). Such a path passes the arithmetic check, so `arithmetic` alone
cannot tell it from a right one. This verifier scores a path by the share of the problem's
numbers that appear in the arithmetic facts it has stated so far (see arithmetic.facts), squared,
and at least FLOOR. Measured on the dev splits (SmolLM2, 16 samples at T=0.3 and at T=0.7,
benchmarks/data/*-dev.jsonl): of the paths that stated a true fact and no false one, 120 of 228
that used every number were right, against 1 of 466 that did not. The test families' figures
are in docs/measurements.md.

Why the square of a share, neither the share nor "all or nothing": paths that miss a number are
almost never right (above), so two that each miss one of three numbers should not outvote one
that uses all three, as they would with the share itself (2 x 2/3 > 1; squared, 2 x 4/9 < 1);
but a right solution need not use every number (the reference solutions of GSM8K's test set use
every number their problem states in 84% of problems, 93% of them on average; a "150%" may be
used as 1.5, a distractor not at all), so a path that misses one of four numbers keeps over half
its weight. Why a floor: a path that states no arithmetic still votes (a little)
when nothing better exists; and on problems whose steps are symbolic (MATH) every path scores
about the floor, so the ranking is left to the other verifier.

Numbers are compared by value: "1,200" is 1200, "5.50" is 11/2, "0.5" matches a "1/2" only when
both 1 and 2 appear. A problem's "150%" counts as used when the path uses 150 or 1.5. Numbers
spelled in words ("three", "twice") are not counted: a path may use them or not.

Combine with the arithmetic check: `--prm arithmetic+coverage` (a false fact zeroes the path;
otherwise the arithmetic factor times this score). Free: no model, engine None.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from .arithmetic import Expr, Group, Number, facts
from .base import StepToScore, Verifier

FLOOR = 0.05  # a path that has used none of the problem's numbers (yet)
MAX_PROBLEM_NUMBERS = 64

# "1,200" (thousands), "5.50", ".75", "12"; a comma list "3,4" is two numbers, not 34
_NUMBER = re.compile(r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?%?|(?<![\d.])\.\d+%?")


def _value(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def problem_numbers(problem: str) -> list[frozenset]:
    """The problem's numbers, each as the set of values that count as using it (a percent: the
    number and its fraction), distinct by value, at most MAX_PROBLEM_NUMBERS."""
    out: list[frozenset] = []
    for m in _NUMBER.finditer(problem):
        text = m.group()
        percent = text.endswith("%")
        value = _value(text.rstrip("%"))
        if value is None:
            continue
        alternatives = frozenset({value, value / 100}) if percent else frozenset({value})
        if alternatives not in out:
            out.append(alternatives)
            if len(out) == MAX_PROBLEM_NUMBERS:
                break
    return out


def _literals(node: Expr, out: set) -> set:
    if isinstance(node, Number):
        value = _value(node.text)
        if value is not None:
            out.add(value)
            if node.percent:
                out.add(value / 100)
    elif isinstance(node, Group):
        _literals(node.inner, out)
    elif node.op == "root" and isinstance(node.args[1], Number):
        _literals(node.args[0], out)  # \sqrt{x}: the parser's implicit index 2 is not a number the path wrote
    else:
        for arg in node.args:
            _literals(arg, out)
    return out


@lru_cache(maxsize=4096)  # forks of one path score the same steps again
def numbers_stated(step_text: str) -> frozenset:
    """Every number that appears in the arithmetic facts a step states, by value."""
    out: set = set()
    for fact in facts(step_text):
        _literals(fact.left_expr, out)
        _literals(fact.right_expr, out)
    return frozenset(out)


def share_used(given: list[frozenset], used: frozenset) -> float:
    """The share of the given numbers used; 1.0 when the problem gives none."""
    if not given:
        return 1.0
    return sum(1 for alternatives in given if alternatives & used) / len(given)


def coverage(given: list[frozenset], used: frozenset) -> float:
    """A path's score: the square of the share of the given numbers it used, at least FLOOR."""
    return max(FLOOR, share_used(given, used) ** 2)


class CoverageVerifier(Verifier):
    """Scores the path so far by the share of the problem's numbers its stated arithmetic has
    used, squared (at least FLOOR). Scores are about the whole path: aggregate with "last" (the default)."""

    name = "coverage"
    engine = None

    def __init__(self):
        self._given: dict[tuple, list[frozenset]] = {}
        self._used: dict[tuple, frozenset] = {}  # (key, node id) -> the numbers the path has used

    def begin(self, key: tuple, problem: str) -> None:
        self._given[key] = problem_numbers(problem)

    def score(self, items: list[StepToScore]) -> list[float]:
        out = []
        for it in items:
            used = self._used.get((it.key, it.parent_id), frozenset()) | numbers_stated(it.text)
            self._used[(it.key, it.node_id)] = used
            out.append(coverage(self._given.get(it.key, []), used))
        return out

    def forget(self, key: tuple, node_ids) -> None:
        for i in node_ids:
            self._used.pop((key, i), None)

    def end(self, key: tuple) -> None:
        self._given.pop(key, None)
        for k in [k for k in self._used if k[0] == key]:
            del self._used[k]
