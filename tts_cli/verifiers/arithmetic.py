"""The arithmetic verifier: check the arithmetic a path states, for free.

Small policies write their arithmetic out ("2 * 23 = 46", "$\\frac{3}{4} \\cdot 8 = 6$",
"<<5*2=10>>"). Such a statement is a *fact*: two expressions made only of numbers and operators,
joined by =, <, >, <=, >=, != or ~ (approximately). A fact can be checked exactly, at no model
cost. Measured on arithmetic word problems with a 135M policy: voting only among sampled paths
that state at least one true fact and no false one lifted accuracy from 15/64 (greedy) and 13/64
(majority of 16) to 26/64; of 1024 candidates 111 were right, 109 of those state a true fact and
no false one, while 335 of the wrong ones state a false one.

Three layers:
- `facts(text)` finds facts in plain text and LaTeX (GSM8K calculator annotations "<<5*2=10>>"
  included); `check(fact)` evaluates one exactly (True, False, or None when it cannot tell);
  `step_verdict(text)` counts a step's true and false facts.
- `ArithmeticVerifier` scores a path so far: 0 once any step stated a false fact, 1 once one
  stated a true fact (and none a false one), `neutral` while no fact has been stated.
- `CombinedVerifier` multiplies another verifier's score by that arithmetic factor.

How facts are found. The text is cut into tokens (numbers, operators, relations, brackets,
\\frac, \\sqrt, words, LaTeX commands, punctuation); a *run* is a maximal stretch of math tokens;
a run with relations "a = b = c" gives a fact per adjacent pair of sides. A side is kept only
when it parses as a whole with a small grammar of numbers and operators, and, at the two ends
of a run, when what touches it cannot be part of it. Words and variables end a run, so "x = 5",
"cost = 10" and "Tom = 5 apples" are not facts, and "39 - 14 = 25 marbles" is one. The rules
lean to missing a fact rather than misreading one, since a misread fact called false would sink
a good path:
- a side glued to a letter, a LaTeX command or odd punctuation is dropped ("f(2) = 5", "a_1 = 3",
  "3:30", "5! = 120", "7x", "\\sin 30 = ...", "17 \\equiv 2"), and so is one next to an operator
  word ("17 mod 5 = 2", "3 times 4 = 12", "7 thousand", "3 R 2") or a label ("Day 1 = 5 + 3",
  "Days 1-3 = 10");
- a run starting with an operator is the tail of an expression with a variable ("x + 3 = 7");
  a leading minus counts only when glued to its number after a clean break ("is -5 + 3 = -2");
- "a = b" between two bare numbers is a label or a unit conversion, not arithmetic ("1 = 100"),
  and so is a bare number equal to percents ("48 = 100% + 20%"); a calculator annotation is
  always a computation ("<<125=125>>");
- ambiguous forms are not facts: "-2^2" (-4 or 4?), a number before \\frac (a mixed number?),
  percents added to plain numbers ("40 - 10% = 36"), numbers with leading zeros (dates),
  a number juxtaposed with a number ("3 1/2", "(555) 123") or with a spaced bracket
  ("2 (3 + 4)": a product, or a label and a sum?);
- a bracket opened with a space after a number and left open is a remark: "= 92 (58 + 30 = 88)";
- running totals: in a chain "2 + 3 = 5 + 1 = 6" the pair "2 + 3 = 5 + 1" reads as the writer
  meant it, "2 + 3 = 5", when the middle side starts with the left side's value.

How facts are checked: numbers become exact sympy Rationals ("5.50" is 11/2, "50%" is 1/2) and
the relation is decided exactly; square and n-th roots stay exact algebraic numbers (sympy
decides their equalities and signs, numerically with its precision checks where no exact rule
applies; what it cannot decide is unknown). A result written with decimals is taken as a
rounding: "10 / 3 = 3.33" is true, as 3.33 is 10/3 rounded to nearest (ties either way) or truncated to two
decimals; nothing looser ("10 / 3 = 3.34" and "0.1 * 3 = 0.4" are false). A result written as an
integer is exact ("10 / 3 = 3" is false). A percent sign may also label a result:
"0.25 * 100 = 25%" and "45 + 21 + 28 = 94%" are true (read as 25 and 94); "20 / 80 = 30%" is
false either way. "~" (approximately) is true within one unit of the stated last digit, false
when the sides are more than 10% apart, unknown in between.

Limits, by construction rather than by timeouts (a verdict never depends on machine load): only
the first MAX_TEXT_CHARS of a step are read and at most MAX_FACTS facts; a side has at most
MAX_SIDE_TOKENS tokens; literals over MAX_LITERAL_DIGITS digits, intermediate values over
MAX_BITS bits, and powers or roots that would exceed them are unknown (None), never false. So
"9**9**9 = 1", "10^10^10 = 5", a 5,000-digit number or a 100 KB step cost next to nothing.
LaTeX is read by the same small parser as plain text rather than by latex2sympy: one grammar
keeps one set of rules about variables and sizes, and every value is a number computed under
those limits (latex2sympy builds symbolic expressions, variables included, whose comparison has
no such bound, and math-verify's timeouts only work in the main thread).

Not facts (left alone): anything with a variable or a constant (pi, e, i), factorials, binomials,
logarithms and trigonometry, absolute values, vectors and matrices, modular arithmetic.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple, Union

from .base import StepToScore, Verifier

MAX_TEXT_CHARS = 8000  # a step is read up to here (cut at whitespace); real steps are far shorter
MAX_FACTS = 64  # facts per step
MAX_SIDE_TOKENS = 64
MAX_LITERAL_DIGITS = 30
MAX_BITS = 4096  # numerator or denominator of any intermediate value
MAX_ROOT_BITS = 256  # radicands of roots and bases of fractional powers
MAX_ROOT_INDEX = 12
MAX_IRRATIONAL_EXPONENT = 12  # integer powers of roots: (1 + \sqrt{2})^3

# --- the expressions a fact relates ----------------------------------------------------------


@dataclass(frozen=True)
class Number:
    text: str  # as written, thousands separators included: "1,200", "5.50", ".75"
    percent: bool = False

    @property
    def decimals(self) -> int:
        """Digits after the decimal point: the precision the writer stated."""
        return len(self.text.partition(".")[2])


@dataclass(frozen=True)
class Group:
    inner: "Expr"  # (…), {…}, [...], \frac{}{}: an atom for implicit products and running totals


@dataclass(frozen=True)
class Operation:
    op: str  # "+", "-", "*", "/", "^", "neg", "root"
    args: tuple


Expr = Union[Number, Group, Operation]


@dataclass(frozen=True)
class Fact:
    left: str  # the two sides as written
    relation: str  # "=", "<", ">", "<=", ">=", "!=", "~" (approximately)
    right: str
    left_expr: Expr = field(compare=False, repr=False)  # the two sides parsed
    right_expr: Expr = field(compare=False, repr=False)
    source: str = "text"  # "annotation": a GSM8K calculator annotation <<a=b>>
    # The right side is followed by another relation ("2 + 3 = 5 + 1 = 6"): a running total.
    continues: bool = field(default=False, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.left} {self.relation} {self.right}"


class Verdict(NamedTuple):
    true: int  # facts that check true
    false: int  # facts that check false


# --- preparing text: LaTeX and Unicode spellings reduced to one token set ---------------------

BREAK = "\x02"  # an opening math delimiter ($, \(, \[) or an environment's edge: a clean break
LINE = "\x03"  # a LaTeX row break (\\) or alignment mark (&)

_ANNOTATION = re.compile(r"<<([^<>\n]{1,200})>>")
_TEXT_COMMAND = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|emph|operatorname)\s*\{([^{}]*)\}")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_REPLACEMENTS = [  # (pattern, replacement), applied in order
    (re.compile(r"\\\\"), LINE),  # before \[ and \( below: "\\[2pt]" is a row break
    (re.compile(r"&"), LINE),
    (re.compile(r"\\begin\s*\{[^{}]*\}(?:\s*\{[^{}]*\})?|\\end\s*\{[^{}]*\}"), BREAK),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\\$|[€£¥₹¢]"), " "),  # currency (an escaped dollar is currency)
    (re.compile(r"\{,\}"), ","),  # 1{,}000
    (re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))"), ""),  # 1\,000
    (re.compile(r"\\!"), ""),  # a negative space: "729,\\!000"
    (re.compile(r"\\[,;: ]"), " "),  # LaTeX spacing
    (re.compile(r"\\(?:left|right)\s*\."), " "),
    (re.compile(r"\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])"), ""),
    (re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])"), ""),  # its braces stay: a group
    (re.compile(r"\\(?:displaystyle|textstyle|quad|qquad|hfill|nonumber|notag|newline)(?![A-Za-z])"), " "),
    (re.compile(r"\\[(\[]|\$\$|(?<![^\s(\[{])\$(?=-)"), BREAK),  # opening "$-5 + 3"; "$x$-5" closes
    (re.compile(r"\\[)\]]|\$"), " "),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![A-Za-z])"), ""),  # degrees are a unit
    (re.compile(r"\\([dt]?frac)\s*(\d)\s*(\d)"), r"\\\1{\2}{\3}"),  # \frac12
    (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),  # \sqrt2: LaTeX takes one digit
    (re.compile(r"(?<=[0-9)\]}])[ \t]*\*\*[ \t]*(?=[0-9(\[{-])"), "^"),  # 2**3
    (re.compile(r"\*\*"), " "),  # markdown bold
    (re.compile(r"(?m)^[ \t]*[-*+•][ \t]+"), " "),  # list bullets
    (re.compile(r"(?m)^[ \t]*\(?(?:\d{1,2}|[A-Za-z])[.)][ \t]+"), " "),  # "1. ", "2) ", "(a) "
]


def _prepare(text: str) -> str:
    text = _TEXT_COMMAND.sub(r" \1 ", text)
    text = re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+", lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", text)
    for pattern, replacement in _REPLACEMENTS:
        text = pattern.sub(replacement, text)
    return text


def _within_limit(text: str) -> str:
    """The part of a step that is read: up to MAX_TEXT_CHARS, cut at whitespace so that no
    number or expression is cut in two (no whitespace at all: nothing is read)."""
    if len(text) <= MAX_TEXT_CHARS:
        return text
    head = text[:MAX_TEXT_CHARS]
    cut = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    return head[:cut] if cut > 0 else ""


# --- tokens --------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
  (?P<space>[ \t\r\f\v]+)
| (?P<boundary>\x02)
| (?P<line>\n|\x03)
| (?P<number>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9])|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)
| (?P<arrow><=>|<->|==>|-->|->|=>|[⇒→⟹⟶↔⇔])
| (?P<relation><=|>=|(?<![0-9)\]}])!=|==|[≤≥≠≈=<>]
             |\\(?:leq?|geq?|neq?|lt|gt|approx|leqslant|geqslant)(?![A-Za-z]))
| (?P<operator>[-+*/^−–×·⋅∙÷]|\\(?:cdot|times|div|ast)(?![A-Za-z]))
| (?P<percent>%)
| (?P<lparen>[(\[{])
| (?P<rparen>[)\]}])
| (?P<frac>\\[dt]?frac(?![A-Za-z]))
| (?P<sqrt>\\sqrt(?![A-Za-z])|√)
| (?P<command>\\[A-Za-z]+|\\.)
| (?P<word>[^\W\d_]+)
| (?P<other>.)
""", re.VERBOSE | re.DOTALL)

_RELATIONS = {"=": "=", "==": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=",
              "≤": "<=", "≥": ">=", "≠": "!=", "≈": "~", "\\le": "<=", "\\leq": "<=",
              "\\leqslant": "<=", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=", "\\ne": "!=",
              "\\neq": "!=", "\\lt": "<", "\\gt": ">", "\\approx": "~"}
_OPERATORS = {"-": "-", "−": "-", "–": "-", "+": "+", "*": "*", "×": "*", "·": "*", "⋅": "*", "∙": "*",
              "\\cdot": "*", "\\times": "*", "\\ast": "*", "/": "/", "÷": "/", "\\div": "/", "^": "^"}
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_MATH_KINDS = {"number", "relation", "operator", "percent", "lparen", "rparen", "frac", "sqrt"}

# Words that make an adjacent number part of a larger expression: "17 mod 5", "3 times 4",
# "more than 4", "7 thousand", "17 / 5 = 3 remainder 2".
_OPERATOR_WORDS = {
    "plus", "minus", "times", "multiplied", "divided", "by", "over", "of", "mod", "modulo",
    "squared", "cubed", "power", "percent", "factorial", "choose", "than", "half", "halves",
    "twice", "double", "triple", "thrice", "quarter", "quarters", "third", "thirds", "dozen",
    "dozens", "hundred", "hundreds", "thousand", "thousands", "million", "millions", "billion",
    "billions", "trillion", "point", "root", "sqrt", "log", "ln", "exp", "sin", "cos", "tan",
    "remainder", "rem", "with", "pi", "to",
}
# Words after which a number opens a statement rather than names a thing ("Day 1 = 5 + 3").
_CONNECTIVE_WORDS = {
    "so", "thus", "then", "hence", "therefore", "and", "is", "was", "are", "were", "be", "get",
    "gets", "got", "gives", "give", "yields", "that", "which", "because", "since", "as", "also",
    "now", "check", "verify", "yes", "indeed", "means", "or", "calculate", "compute", "find",
    "total", "we", "have", "has", "equals", "answer", "result", "sum", "product", "difference",
}
# LaTeX commands that separate statements; any other command next to a number binds to it.
_SEPARATOR_COMMANDS = {"\\implies", "\\Rightarrow", "\\rightarrow", "\\Longrightarrow",
                       "\\longrightarrow", "\\therefore", "\\because", "\\iff", "\\to", "\\qquad",
                       "\\quad", "\\hspace", "\\vspace", "\\text", "\\and"}
# Symbols that may belong to a number even with a space between: "| 3 - 5 |", "~ 5", "5 !" (a
# factorial), "5 '" (feet). Other punctuation and symbols ("✓", "#", "!" before) end a run.
_BINDING_BEFORE = set("|~_")
_BINDING_AFTER = set("|~_!'")


@dataclass
class Token:
    kind: str
    text: str
    start: int
    end: int
    spaced: bool  # whitespace (or the start of the text) comes before it


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    spaced = True
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            spaced = True
            continue
        out.append(Token(kind, m.group(), m.start(), m.end(), spaced))
        spaced = kind in ("boundary", "line")
    _read_words_as_operators(out)
    return _mark_remarks(_drop_soft_line_breaks(out))


def _read_words_as_operators(tokens: list[Token]) -> None:
    """"5 x 2" and "5x2" multiply (an x between two numbers, spaced alike on both sides);
    "50% of 80" multiplies (of right after a percent); "sqrt(16)" is a root."""
    for i in range(1, len(tokens) - 1):
        prev, tok, nxt = tokens[i - 1], tokens[i], tokens[i + 1]
        if tok.kind != "word" or nxt.kind not in ("number", "lparen"):
            continue
        if tok.text in ("x", "X") and prev.kind in ("number", "rparen", "percent") and tok.spaced == nxt.spaced:
            tok.kind, tok.text = "operator", "*"
        elif tok.text.lower() == "of" and prev.kind == "percent" and tok.spaced and nxt.spaced:
            tok.kind, tok.text = "operator", "*"
        elif tok.text == "sqrt" and nxt.text == "(" and not nxt.spaced:
            tok.kind, tok.text = "sqrt", "√"
    if len(tokens) >= 2 and tokens[0].text == "sqrt" and tokens[1].text == "(" and not tokens[1].spaced:
        tokens[0].kind, tokens[0].text = "sqrt", "√"  # the loop above starts at the second token


def _drop_soft_line_breaks(tokens: list[Token]) -> list[Token]:
    """A line break next to a relation continues a chain (an align environment's
    "&= 3 + 4 \\\\ &= 7", or "=" at a line's end); any other line break ends the run."""
    before: list[Token | None] = []  # the nearest token that is not a line break, each side
    last = None
    for tok in tokens:
        before.append(last)
        if tok.kind != "line":
            last = tok
    after: list[Token | None] = [None] * len(tokens)
    last = None
    for i in range(len(tokens) - 1, -1, -1):
        after[i] = last
        if tokens[i].kind != "line":
            last = tokens[i]
    out = []
    for tok, prev, nxt in zip(tokens, before, after):
        if tok.kind == "line" and ((prev and prev.kind == "relation") or (nxt and nxt.kind == "relation")):
            if nxt is not None:
                nxt.spaced = True
            continue
        out.append(tok)
    return out


def _mark_remarks(tokens: list[Token]) -> list[Token]:
    """"= 92 (58 + 30 = 88, ...)", "= 7 (seven)": a bracket opened with a space after a number and
    not closed before a relation or a word starts a remark, not a product: a boundary goes before
    it. ("2 (3 + 4) = 14" closes its bracket first: no boundary, and not a fact either.)"""
    out = []
    for i, tok in enumerate(tokens):
        if tok.kind == "lparen" and tok.text in "([" and tok.spaced and i > 0 \
                and tokens[i - 1].kind in ("number", "rparen", "percent") and _opens_a_remark(tokens, i):
            out.append(Token("boundary", "", tok.start, tok.start, True))
        out.append(tok)
    return out


def _opens_a_remark(tokens: list[Token], i: int) -> bool:
    depth = 0
    for tok in tokens[i:i + MAX_SIDE_TOKENS]:  # a bounded look: a side is no longer
        if tok.kind == "relation" or tok.kind not in _MATH_KINDS:
            return True  # still open
        depth += 1 if tok.kind == "lparen" else -1 if tok.kind == "rparen" else 0
        if depth == 0:
            return False
    return i + MAX_SIDE_TOKENS >= len(tokens)  # open at the end of the text


# --- runs: stretches of math tokens, and what touches their ends ------------------------------


@dataclass
class MathRun:
    tokens: list[Token]
    before: Token | None  # the token that ended the previous run (None: start of text)
    after: Token | None
    after_next: Token | None  # the token after `after`
    before_previous: Token | None  # the token before `before`


def _token_at(tokens: list[Token], i: int) -> Token | None:
    return tokens[i] if 0 <= i < len(tokens) else None


def _runs(tokens: list[Token]) -> list[MathRun]:
    runs = []
    i = 0
    while i < len(tokens):
        if tokens[i].kind not in _MATH_KINDS:
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j].kind in _MATH_KINDS:
            j += 1
        chunk = tokens[i:j]
        if any(t.kind == "relation" for t in chunk):
            runs.append(MathRun(chunk, before=_token_at(tokens, i - 1), after=_token_at(tokens, j),
                                after_next=_token_at(tokens, j + 1), before_previous=_token_at(tokens, i - 2)))
        i = j
    return runs


def _starts_with_fraction(tokens: list[Token]) -> bool:
    return bool(tokens) and (tokens[0].kind == "frac" or (
        len(tokens) >= 3 and tokens[0].kind == "number" and tokens[1].text == "/" and tokens[2].kind == "number"))


def _left_end_is_bound(run: MathRun, side: list[Token]) -> bool:
    """Whether what comes before the run's first side may belong to it (then it is dropped)."""
    before, first = run.before, side[0]
    if before is None or before.kind in ("boundary", "line", "arrow"):
        return False
    if not first.spaced:
        return True  # glued: "f(2)", "a_1", "3:30", "x2"
    if before.kind == "word":
        word = before.text.lower()
        if word == "and":  # "3 and 1/2 * 2": a mixed number
            previous = run.before_previous
            return previous is not None and previous.kind == "number" and _starts_with_fraction(side)
        return word in _OPERATOR_WORDS or (len(word) == 1 and word not in ("a", "i"))
    if before.kind == "command":
        return before.text not in _SEPARATOR_COMMANDS
    return before.text in _BINDING_BEFORE


def _right_end_is_bound(run: MathRun) -> bool:
    """Whether what comes after the run's last side may belong to it (then it is dropped)."""
    after, following = run.after, run.after_next
    if after is None or after.kind in ("boundary", "line", "arrow"):
        return False
    if after.kind == "word":
        word = after.text.lower()
        if word == "and":  # "17 / 5 = 3 and 2/5": a mixed number
            return following is not None and (following.kind in ("number", "frac")
                                              or following.text.lower() in ("a", "one", "half"))
        if word in _OPERATOR_WORDS or (len(word) == 1 and not (word == "a" and after.spaced)):
            return True  # "= 7x", "= 3 R 2", "= 7 thousand"; not "= 100 a week"
        # a glued unit is fine ("10cm") unless it is applied to something ("2sin(x)", "3x^2")
        return not after.spaced and following is not None and not following.spaced and \
            (following.kind == "lparen" or following.text in ("^", "_"))
    if after.kind == "command":
        return after.text not in _SEPARATOR_COMMANDS
    if after.text in ".,;:?":  # sentence punctuation, unless glued to more: "3:30", "7,5"
        return following is not None and not following.spaced and following.kind not in ("boundary", "line")
    return not after.spaced or after.text in _BINDING_AFTER  # glued: "5!", "a_1", "|x|", "5'"


# --- parsing a side ----------------------------------------------------------------------------


class NotAFact(Exception):
    """A side that is not an expression made of numbers and operators alone."""


class _Parser:
    """Recursive descent: sum := product (+|- product)*; product := signed ((*|/) signed |
    implicit power)*; signed := -signed | power; power := postfix (^ signed)?; postfix := atom %?;
    atom := number | (sum) | \\frac{sum}{sum} | \\sqrt[n]{sum}."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.i = 0

    def parse(self) -> Expr:
        if not self.tokens or len(self.tokens) > MAX_SIDE_TOKENS:
            raise NotAFact
        node = self.sum()
        if self.i != len(self.tokens):
            raise NotAFact
        return node

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise NotAFact
        self.i += 1
        return tok

    def operator(self) -> str | None:
        tok = self.peek()
        return _OPERATORS.get(tok.text) if tok is not None and tok.kind == "operator" else None

    def sum(self) -> Expr:
        node = self.product()
        while self.operator() in ("+", "-"):
            op = _OPERATORS[self.take().text]
            right = self.product()
            if _is_percent(node) != _is_percent(right):
                raise NotAFact  # "40 - 10% = 36": 10% of what?
            node = Operation(op, (node, right))
        return node

    def product(self) -> Expr:
        node = self.signed()
        while True:
            if self.operator() in ("*", "/"):
                op = _OPERATORS[self.take().text]
                node = Operation(op, (node, self.signed()))
            elif self.implicit_product_follows(node):
                node = Operation("*", (node, self.power()))
            else:
                return node

    def implicit_product_follows(self, node: Expr) -> bool:
        """2(3 + 4), (2)(3), 2\\sqrt{3}, \\frac{1}{2}\\frac{3}{4}; not 2\\frac{1}{2} (a mixed
        number?), not "2 (3 + 4)" (a label, then an expression?)."""
        tok = self.peek()
        if tok is None:
            return False
        if tok.kind == "lparen":
            return tok.text in "([" and not tok.spaced
        if tok.kind == "sqrt":
            return True
        return tok.kind == "frac" and not isinstance(node, Number)

    def signed(self) -> Expr:
        if self.operator() == "-":
            self.take()
            operand = self.signed()
            if isinstance(operand, Operation) and operand.op == "^" and isinstance(operand.args[0], Number):
                raise NotAFact  # "-2^2": -4 by convention, often meant as 4
            return Operation("neg", (operand,))
        return self.power()

    def power(self) -> Expr:
        base = self.postfix()
        if self.operator() == "^":
            self.take()
            return Operation("^", (base, self.signed()))  # right-associative: 2^3^2 = 2^9
        return base

    def postfix(self) -> Expr:
        node = self.atom()
        tok = self.peek()
        if tok is not None and tok.kind == "percent":
            if not isinstance(node, Number):
                raise NotAFact
            self.take()
            return Number(node.text, percent=True)
        return node

    def atom(self) -> Expr:
        tok = self.take()
        if tok.kind == "number":
            digits = tok.text.replace(",", "")
            if len(digits) > 1 and digits[0] == "0" and digits[1] != ".":
                raise NotAFact  # "05": a date, a time, a code
            return Number(tok.text)
        if tok.kind == "lparen":
            return Group(self.group_rest(tok))
        if tok.kind == "frac":
            numerator = self.braced()
            denominator = self.braced()
            return Group(Operation("/", (numerator, denominator)))
        if tok.kind == "sqrt":
            index: Expr = Number("2")
            nxt = self.peek()
            if tok.text != "√" and nxt is not None and nxt.text == "[":
                self.take()
                index = self.group_rest(nxt)
            radicand = self.braced() if tok.text != "√" else self.postfix()
            return Operation("root", (radicand, index))
        raise NotAFact

    def group_rest(self, opening: Token) -> Expr:
        inner = self.sum()
        closing = self.take()
        if closing.kind != "rparen" or closing.text != _CLOSING[opening.text]:
            raise NotAFact
        return inner

    def braced(self) -> Expr:
        tok = self.take()
        if tok.text != "{":
            raise NotAFact
        return self.group_rest(tok)


def _is_percent(node: Expr) -> bool:
    if isinstance(node, Number):
        return node.percent
    if isinstance(node, Group):
        return _is_percent(node.inner)
    if node.op == "neg":
        return _is_percent(node.args[0])
    return node.op in ("+", "-") and _is_percent(node.args[0])


def _bare_literal(node: Expr) -> Number | None:
    """The number when a side is just a number: "5", "(5)", "-5"."""
    while not isinstance(node, Number):
        if isinstance(node, Group):
            node = node.inner
        elif node.op == "neg":
            node = node.args[0]
        else:
            return None
    return node


def _contains_percent(node: Expr) -> bool:
    if isinstance(node, Number):
        return node.percent
    if isinstance(node, Group):
        return _contains_percent(node.inner)
    return any(_contains_percent(a) for a in node.args)


def _without_percent(node: Expr) -> Expr:
    """The expression with its percent signs read as units: "94%" as 94."""
    if isinstance(node, Number):
        return Number(node.text)
    if isinstance(node, Group):
        return Group(_without_percent(node.inner))
    return Operation(node.op, tuple(_without_percent(a) for a in node.args))


def _is_correspondence(left: Expr, right: Expr) -> bool:
    """An equality that states no arithmetic: two bare numbers ("1 = 100" cents, "Day 1 = 5"),
    or a bare number and a percent ("48 = 100% + 20%": 48 is 120% of something)."""
    bare_left, bare_right = _bare_literal(left), _bare_literal(right)
    if bare_left is not None and bare_right is not None:
        return True
    return (bare_left is not None and not bare_left.percent and _is_percent(right)) or \
        (bare_right is not None and not bare_right.percent and _is_percent(left))


def _parse_side(tokens: list[Token]) -> Expr | None:
    try:
        return _Parser(tokens).parse()
    except NotAFact:
        return None


def _trim_unmatched(side: list[Token], at_start: bool) -> list[Token]:
    """Drop brackets opened before the first side or closed after the last one: "(2 + 3 = 5)"."""
    depth = sum(1 if t.kind == "lparen" else -1 if t.kind == "rparen" else 0 for t in side)
    start, end = 0, len(side)
    if at_start:
        while depth > 0 and start < end and side[start].kind == "lparen":
            start, depth = start + 1, depth - 1
    else:
        while depth < 0 and start < end and side[end - 1].kind == "rparen":
            end, depth = end - 1, depth + 1
    return side[start:end]


_GLUED_MINUS_STARTERS = {"is", "was", "are", "be", "get", "gets", "got", "gives", "give", "yields",
                         "so", "then", "thus", "hence", "therefore", "and"}


def _is_minus(tok: Token) -> bool:
    return tok.kind == "operator" and _OPERATORS[tok.text] == "-"


def _starts_with_a_sign(run: MathRun, side: list[Token]) -> bool:
    """Whether a run's first side starts with a minus sign rather than a subtraction: the minus is
    glued to its number and nothing before it could be the left operand ("is -5 + 3"; not
    "x - 3 = 7" nor "y -3 = 7")."""
    if len(side) < 2 or not _is_minus(side[0]) or side[1].spaced:
        return False
    before = run.before
    if before is None or before.kind in ("boundary", "line", "arrow"):
        return True
    if before.kind == "word":
        return before.text.lower() in _GLUED_MINUS_STARTERS
    if before.kind == "command":
        return before.text in _SEPARATOR_COMMANDS
    return before.text in ":,;"


def _follows_a_label(run: MathRun) -> bool:
    """The run comes right after a word that may name what follows: "Day 1", "Box 2"."""
    before = run.before
    return before is not None and before.kind == "word" and before.text.lower() not in _CONNECTIVE_WORDS


def _is_range(side: list[Token]) -> bool:
    """"1-3", "1–3": a glued difference of integers going up reads as a range."""
    if len(side) != 3 or not _is_minus(side[1]) or side[1].spaced or side[2].spaced:
        return False
    low, high = side[0].text.replace(",", ""), side[2].text.replace(",", "")
    return low.isdigit() and high.isdigit() and int(low) < int(high)


def _first_side(run: MathRun, side: list[Token]) -> Expr | None:
    if not side or _left_end_is_bound(run, side):
        return None
    side = _trim_unmatched(side, at_start=True)
    if not side:
        return None
    if side[0].kind in ("operator", "percent", "rparen") and not _starts_with_a_sign(run, side):
        return None  # the tail of an expression that started before the run: "x + 3 = 7"
    node = _parse_side(side)
    if node is not None and _follows_a_label(run) and (_bare_literal(node) is not None or _is_range(side)):
        return None  # "Day 1 = 5 + 3", "Box 2 = 10 apples", "Days 1-3 = 10 miles"
    return node


def _last_side(run: MathRun, side: list[Token]) -> Expr | None:
    if not side or _right_end_is_bound(run):
        return None
    return _parse_side(_trim_unmatched(side, at_start=False))


def _facts_in_run(run: MathRun, text: str, source: str) -> list[Fact]:
    sides: list[list[Token]] = [[]]
    relations: list[str] = []
    for tok in run.tokens:
        if tok.kind == "relation":
            relations.append(_RELATIONS[tok.text])
            sides.append([])
        else:
            sides[-1].append(tok)
    last = len(sides) - 1
    parsed = []
    for i, side in enumerate(sides):
        if len(side) > MAX_SIDE_TOKENS:
            parsed.append(None)
        elif i == 0:
            parsed.append(_first_side(run, side))
        elif i == last:
            parsed.append(_last_side(run, side))
        else:
            parsed.append(_parse_side(side))
    shown = [_trim_unmatched(side, at_start=True) if i == 0 else
             _trim_unmatched(side, at_start=False) if i == last else side for i, side in enumerate(sides)]
    out = []
    for i, relation in enumerate(relations):
        left, right = parsed[i], parsed[i + 1]
        if left is None or right is None:
            continue
        if relation in ("=", "~") and source != "annotation" and _is_correspondence(left, right):
            continue  # (a calculator annotation, even "<<125=125>>", is a computation)
        out.append(Fact(_span(text, shown[i]), relation, _span(text, shown[i + 1]), left, right, source,
                        continues=i + 1 < last))
    return out


def _span(text: str, side: list[Token]) -> str:
    return " ".join(text[side[0].start:side[-1].end].split())


def _facts_in_text(text: str, source: str):
    prepared = _prepare(text)
    for run in _runs(_tokens(prepared)):
        yield from _facts_in_run(run, prepared, source)


def facts(step_text: str) -> list[Fact]:
    """The arithmetic facts stated in a step, at most MAX_FACTS: GSM8K calculator annotations
    first, then the text's own (a fact written both ways, "2*5=<<2*5=10>>10", counts once)."""
    text = _within_limit(step_text)
    # An annotation is a calculator's input: its leading "+" is a sign ("<<+8=8>>").
    annotations = (f for m in _ANNOTATION.finditer(text)
                   for f in _facts_in_text(m.group(1).lstrip().removeprefix("+"), "annotation"))
    found = itertools.chain(annotations, _facts_in_text(_ANNOTATION.sub("", text), "text"))
    seen = set()
    out = []
    for fact in found:
        key = (re.sub(r"\s+", "", fact.left), fact.relation, re.sub(r"\s+", "", fact.right))
        if key not in seen:
            seen.add(key)
            out.append(fact)
            if len(out) == MAX_FACTS:
                break
    return out


# --- checking a fact ---------------------------------------------------------------------------


class Unknown(Exception):
    """The value cannot be computed within the limits (or is undefined, like 1/0)."""


@lru_cache(maxsize=1)
def _sympy():
    import sympy  # imported on first use: the CLI starts without it

    return sympy


def _bounded(value):
    if value.is_Rational and (value.p.bit_length() > MAX_BITS or value.q.bit_length() > MAX_BITS):
        raise Unknown
    return value


def _evaluate(node: Expr):
    sp = _sympy()
    if isinstance(node, Number):
        digits = node.text.replace(",", "")
        if len(digits) > MAX_LITERAL_DIGITS + 1:
            raise Unknown
        whole, _, fraction = digits.partition(".")
        value = sp.Rational(int(whole + fraction or "0"), 10 ** len(fraction))
        return value / 100 if node.percent else value
    if isinstance(node, Group):
        return _evaluate(node.inner)
    args = [_evaluate(a) for a in node.args]
    if node.op == "neg":
        return -args[0]
    if node.op == "+":
        return _bounded(args[0] + args[1])
    if node.op == "-":
        return _bounded(args[0] - args[1])
    if node.op == "*":
        return _bounded(args[0] * args[1])
    if node.op == "/":
        if args[1] == 0:
            raise Unknown
        return _bounded(args[0] / args[1])
    if node.op == "^":
        return _bounded(_power(*args))
    if node.op == "root":
        return _root(*args)
    raise ValueError(f"unknown operation {node.op!r}")


def _power(base, exponent):
    sp = _sympy()
    if not exponent.is_Rational:
        raise Unknown
    if not base.is_Rational:
        if exponent.q != 1 or abs(exponent.p) > MAX_IRRATIONAL_EXPONENT:
            raise Unknown
        return base ** exponent
    if base == 0 and exponent <= 0:
        raise Unknown  # 0^0 and 0^-1 are undefined
    if base in (0, 1):
        return base
    if base == -1 and exponent.q == 1:
        return sp.Integer(-1 if exponent.p % 2 else 1)
    if exponent.q != 1:  # 8^(2/3)
        if base < 0 or exponent.q > MAX_ROOT_INDEX or abs(exponent.p) > MAX_IRRATIONAL_EXPONENT \
                or max(base.p.bit_length(), base.q.bit_length()) > MAX_ROOT_BITS:
            raise Unknown
        return base ** exponent
    # The result's size is known before computing it: |exponent| * bits(base).
    if abs(exponent.p) * max(base.p.bit_length(), base.q.bit_length()) > MAX_BITS:
        raise Unknown
    return base ** exponent


def _root(radicand, index):
    sp = _sympy()
    if not index.is_Integer or not 2 <= index <= MAX_ROOT_INDEX or not radicand.is_Rational:
        raise Unknown
    if max(radicand.p.bit_length(), radicand.q.bit_length()) > MAX_ROOT_BITS:
        raise Unknown
    if radicand < 0:
        if index % 2 == 0:
            raise Unknown  # not a real number
        return -((-radicand) ** sp.Rational(1, int(index)))
    return radicand ** sp.Rational(1, int(index))


def _stated_decimal(node: Expr) -> Number | None:
    """The number when a side is just a number written with decimals ("3.33", "33.3%")."""
    literal = _bare_literal(node)
    return literal if literal is not None and literal.decimals else None


def _unit(literal: Number):
    """One unit of a literal's last digit: 1/100 for "3.33", 1/1000 for "33.3%"."""
    unit = _sympy().Rational(1, 10 ** literal.decimals)
    return unit / 100 if literal.percent else unit


def _decide(claim) -> bool | None:
    """A sympy relation between numbers, decided; None when sympy cannot tell."""
    try:
        return bool(claim)
    except TypeError:  # an undecided relation
        return None


def _equal(exact, value, stated: Number | None = None) -> bool | None:
    """exact = value; or, when `value` is written as the decimal `stated`, `value` is `exact`
    rounded to nearest (ties either way) or truncated to the stated decimals: 10/3 = 3.33,
    2/3 = 0.67 or 0.66, 4.65 = 4.6 or 4.7, but not 10/3 = 3.34 nor 0.1 * 3 = 0.4."""
    sp = _sympy()
    difference = exact - value
    zero = difference.is_zero  # decided exactly, or numerically with sympy's precision checks
    if zero:
        return True
    if stated is None:
        return False if zero is False else None
    unit = _unit(stated)
    nearest = _decide(abs(difference) <= unit / 2)
    if nearest:
        return True
    truncated = sp.sign(exact) * sp.floor(abs(exact) / unit) * unit
    truncation = _decide(sp.Eq(truncated, value))
    if truncation:
        return True
    return None if nearest is None or truncation is None else False


def _sides_equal(left_expr: Expr, left, right_expr: Expr, right) -> bool | None:
    """left = right, reading a side written as a decimal as a rounded result."""
    if (stated := _stated_decimal(right_expr)) is not None:
        return _equal(left, right, stated)
    return _equal(right, left, _stated_decimal(left_expr))  # "3.33 = 10/3"


def _percent_may_be_a_unit(fact: Fact) -> bool:
    """One side is all percents and the other has none: "0.25 * 100 = 25%" means 25 (percent)."""
    return (_is_percent(fact.right_expr) and not _contains_percent(fact.left_expr)) or \
        (_is_percent(fact.left_expr) and not _contains_percent(fact.right_expr))


def _approximately(left, right, tolerance) -> bool | None:
    """left ~ right: true within `tolerance` (one unit of the stated digits), false when more
    than 10% apart, unknown in between."""
    if tolerance is None:
        return True if _equal(left, right) else None
    close = _decide(abs(left - right) < tolerance)
    if close:
        return True
    far = _decide(abs(left - right) > max(abs(left), abs(right)) / 10)
    return False if far else None


def _approximation_tolerance(fact: Fact):
    units = [_unit(n) for n in (_stated_decimal(fact.left_expr), _stated_decimal(fact.right_expr)) if n is not None]
    if units:
        return max(units)
    if _bare_literal(fact.left_expr) is not None or _bare_literal(fact.right_expr) is not None:
        return _sympy().Integer(1)  # "100/3 ~ 33": a stated integer is good to one unit
    return None


def _holds(fact: Fact, left, right) -> bool | None:
    relation = fact.relation
    if relation == "=":
        verdict = _sides_equal(fact.left_expr, left, fact.right_expr, right)
        if verdict is not True and _percent_may_be_a_unit(fact):
            # "18 / 450 x 100 = 4%", "45 + 21 + 28 = 94%": the percent sign labels the result
            left_expr, right_expr = _without_percent(fact.left_expr), _without_percent(fact.right_expr)
            as_unit = _sides_equal(left_expr, _evaluate(left_expr), right_expr, _evaluate(right_expr))
            if as_unit is not False:
                return as_unit
        return verdict
    if relation == "!=":
        equal = _equal(left, right)
        return None if equal is None else not equal
    if relation == "~":
        return _approximately(left, right, _approximation_tolerance(fact))
    difference = left - right
    return {"<": difference.is_negative, ">": difference.is_positive,
            "<=": difference.is_nonpositive, ">=": difference.is_nonnegative}[relation]


def _running_total_head(node: Expr) -> Number | None:
    """The number a running total continues from: 5 in "5 + 1" or "5 * 2 - 3"."""
    if not isinstance(node, Operation) or node.op not in ("+", "-", "*", "/"):
        return None
    while isinstance(node, Operation) and node.op in ("+", "-", "*", "/"):
        node = node.args[0]
    return node if isinstance(node, Number) else None


def check(fact: Fact) -> bool | None:
    """Whether the fact holds: True, False, or None when it cannot be decided within the limits
    (an unknown is never reported as false)."""
    try:
        left, right = _evaluate(fact.left_expr), _evaluate(fact.right_expr)
        verdict = _holds(fact, left, right)
        if verdict is False and fact.relation == "=" and fact.continues:
            head = _running_total_head(fact.right_expr)
            if head is not None and _equal(left, _evaluate(head), head if head.decimals else None):
                return True  # "2 + 3 = 5 + 1 = 6": the writer's 2 + 3 = 5
        return verdict
    except (Unknown, ArithmeticError, ValueError, TypeError):
        return None  # sympy refusing an odd value is an unknown, not a false fact


def step_verdict(text: str) -> Verdict:
    """(true facts, false facts) stated in a step."""
    if len(text) <= MAX_TEXT_CHARS:
        return _cached_verdict(text)
    return _verdict(text)


def _verdict(text: str) -> Verdict:
    results = [check(f) for f in facts(text)]
    return Verdict(results.count(True), results.count(False))


@lru_cache(maxsize=4096)
def _cached_verdict(text: str) -> Verdict:
    return _verdict(text)  # forks of one path score the same steps again


# --- repair: the answer a path meant ----------------------------------------------------------

MAX_ANSWER_CHARS = 200  # longer is no plain number a sum could have meant: not parsed


def repaired_answer(steps: list[str], answer: str | None) -> str | None:
    """The answer the path would have given had its last sum been right: when the only false
    fact the path states is its last one, an equality whose stated result is the path's answer,
    the true value of that equality's left side ("5 * 4 = 21. \\boxed{21}" -> "20"). None when
    there is nothing to repair, or more went wrong than the last sum (an earlier false fact,
    another answer, a value that is not a plain number).

    Why only that case: a slip in the last computation is a slip the check can undo without
    guessing; an earlier false result has flowed into later steps the path would have written
    differently. (Measured on the dev splits before it was built: it turns more wrong candidates
    right than right ones wrong; docs/measurements.md.)"""
    if answer is None or len(answer) > MAX_ANSWER_CHARS:
        return None
    # one false fact in all: the steps' verdicts, cached when the verifier scored them live
    if sum(step_verdict(step).false for step in steps) != 1:
        return None
    last = next((stated[-1] for stated in map(facts, reversed(steps)) if stated), None)
    if last is None or last.relation != "=" or check(last) is not False:
        return None
    answer_expr = _parse_side(_tokens(_prepare(answer)))
    if answer_expr is None:
        return None
    try:
        left, right, value = _evaluate(last.left_expr), _evaluate(last.right_expr), _evaluate(answer_expr)
    except (Unknown, ArithmeticError, ValueError, TypeError):
        return None
    if value != right or not getattr(left, "is_Rational", False):
        return None
    return _plain_number(left)


def _plain_number(value) -> str:
    """A rational as an answer is written: 20, -3, 2.5, 1/3 (a decimal only when it ends)."""
    p, q = int(value.p), int(value.q)
    if q == 1:
        return str(p)
    rest, places = q, {2: 0, 5: 0}
    for k in places:
        while rest % k == 0:
            rest //= k
            places[k] += 1
    if rest != 1:
        return f"{p}/{q}"
    d = max(places.values())  # p/q = p * 10^d / q / 10^d exactly
    digits = str(abs(p) * 10 ** d // q).rjust(d + 1, "0")
    return ("-" if p < 0 else "") + digits[:-d] + "." + digits[-d:]


# --- the verifiers ----------------------------------------------------------------------------

# The score of a path that has stated no fact yet. Beam search, DVTS and PRM-Max only rank paths,
# and any value strictly between 0 and 1 ranks them as the measurement suggests: refuted <
# unproven < verified. The value itself matters for PRM-Vote, where a path's score is its vote.
# The measured gain (15/64 greedy, 13/64 majority of 16, to 26/64) came from voting among verified
# paths only. PRM-Vote does exactly that when all unproven paths together weigh less than one
# verified path, neutral * (N - 1) < 1: 0.05 does so up to N = 20 (the measurement used N = 16),
# and when no path is verified the unproven ones still vote among themselves (a majority vote),
# ahead of refuted ones. The counts agree that an unproven vote should weigh little: 109 of the 111
# right candidates were verified, so at most 2 right ones were unproven, while 913 - 335 = 578
# wrong ones were verified or unproven. At larger N many agreeing unproven paths can outvote one
# verified path (20 of them weigh as much); pass a smaller neutral to keep verified-only voting.
DEFAULT_NEUTRAL = 0.05


def _arithmetic_score(verdict: Verdict, neutral: float) -> float:
    if verdict.false:
        return 0.0
    return 1.0 if verdict.true else neutral


class ArithmeticVerifier(Verifier):
    """Scores the path so far: 0.0 once a step stated a false fact, 1.0 once one stated a true
    fact (and none a false one), `neutral` before any fact. Free: no model, engine None.

    Scores are about the whole path, so aggregate with "last" (the default): a path's score is
    then its verdict. With "min" a path stays at `neutral` if its first step stated no fact."""

    name = "arithmetic"
    engine = None

    def __init__(self, neutral: float = DEFAULT_NEUTRAL):
        if not 0.0 <= neutral <= 1.0:
            raise ValueError(f"neutral must be in [0, 1], not {neutral}")
        self.neutral = neutral
        self._verdicts: dict[tuple, Verdict] = {}  # (key, node id) -> the path's counts so far

    def score(self, items: list[StepToScore]) -> list[float]:
        out = []
        for it in items:
            # The root (0) has stated nothing; a forgotten parent counts as nothing stated.
            parent = self._verdicts.get((it.key, it.parent_id), Verdict(0, 0))
            step = step_verdict(it.text)
            path = Verdict(parent.true + step.true, parent.false + step.false)
            self._verdicts[(it.key, it.node_id)] = path
            out.append(_arithmetic_score(path, self.neutral))
        return out

    def verdict(self, key: tuple, node_id: int) -> Verdict | None:
        """The true and false facts stated on the path up to this node (None: not scored, or
        forgotten)."""
        return self._verdicts.get((key, node_id))

    def forget(self, key: tuple, node_ids) -> None:
        for i in node_ids:
            self._verdicts.pop((key, i), None)

    def end(self, key: tuple) -> None:
        for k in [k for k in self._verdicts if k[0] == key]:
            del self._verdicts[k]


class CombinedVerifier(Verifier):
    """Another verifier's score times the arithmetic factor of the path so far: 0 once a step
    stated a false fact, 1 once a fact checked true, `neutral` before any fact. So a refuted path
    scores 0 whatever the other verifier says, and among paths that stated nothing the other
    verifier's ranking stands (all are scaled alike). The other verifier scores every item,
    refuted ones included: it may keep per-node state that later steps extend."""

    def __init__(self, other: Verifier, neutral: float = DEFAULT_NEUTRAL):
        self.other = other
        self.arithmetic = ArithmeticVerifier(neutral)
        self.name = "arithmetic+" + other.name
        self.engine = other.engine  # the compute is the other verifier's

    def begin(self, key: tuple, problem: str) -> None:
        self.arithmetic.begin(key, problem)
        self.other.begin(key, problem)

    def score(self, items: list[StepToScore]) -> list[float]:
        factors = self.arithmetic.score(items)
        scores = self.other.score(items)
        return [s * f for s, f in zip(scores, factors)]

    def verdict(self, key: tuple, node_id: int) -> Verdict | None:
        return self.arithmetic.verdict(key, node_id)

    def take_usage(self, search_key):
        return self.other.take_usage(search_key)

    def forget(self, key: tuple, node_ids) -> None:
        node_ids = list(node_ids)  # it may be an iterator: both verifiers need it
        self.arithmetic.forget(key, node_ids)
        self.other.forget(key, node_ids)

    def end(self, key: tuple) -> None:
        self.arithmetic.end(key)
        self.other.end(key)

    def close(self) -> None:
        self.arithmetic.close()
        self.other.close()
