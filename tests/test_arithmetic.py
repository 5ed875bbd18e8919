"""The arithmetic verifier: which statements are facts, how they check, what a path scores, and
that no reference solution of GSM8K or MATH-500 has its arithmetic called false. No model."""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction

import pytest
from conftest import SHARED_DATA

from tts_cli.search.common import aggregate
from tts_cli.verifiers.arithmetic import (DEFAULT_NEUTRAL, ArithmeticVerifier, CombinedVerifier, Verdict, check,
                                          facts, step_verdict)
from tts_cli.verifiers.base import StepToScore, Verifier


def checked(text: str) -> list[tuple[str, bool | None]]:
    return [(str(f), check(f)) for f in facts(text)]


# --- facts and their verdicts ------------------------------------------------------------------

TRUE_FACTS = [
    "5 * 2 = 10", "5 x 2 = 10", "5x2=10", "5 × 2 = 10", "5 · 2 = 10", "10 ÷ 2 = 5", "12 − 5 = 7",
    "3 + 4 + 5 = 12", "39 - 14 = 25 marbles", "2 * 5 = 10cm", "She has 3 + 4 = 7 apples.",
    "$12 / 4 = 3$", r"$\frac{3}{4} \cdot 8 = 6$", r"\dfrac{3}{4} \times 8 = 6", r"\frac12 + \frac12 = 1",
    r"12 \div 4 = 3", r"3 \cdot 4 = \boxed{12}", r"\( 2 + 2 = 4 \)", r"\[ 2 + 2 = 4 \]",
    "2^3 = 8", "2**3 = 8", "2³ = 8", "2^{10} = 1024", "(-2)^2 = 4", "2^-1 = 0.5", "2^3^2 = 512",
    "1,200 + 300 = 1,500", "1,000,000 / 1,000 = 1,000", r"$1{,}000 + 1 = 1{,}001$", r"90^3 = 729,\!000",
    "$5.50 * 2 = $11", "0.1 + 0.2 = 0.3", "2.5 * 4 = 10.0", ".5 + .25 = .75",
    "-5 + 3 = -2", "So the total is -5 + 3 = -2", "3 * -2 = -6", "3 - -2 = 5", "Step 1: -4 + 1 = -3",
    "(2 + 3) * 4 = 20", "2(3 + 4) = 14", "(2)(3) = 6", "[2 + 3] * 2 = 10",
    r"\sqrt{16} = 4", "√16 = 4", r"\sqrt[3]{27} = 3", r"\sqrt[3]{-8} = -2", r"\sqrt{8} = 2\sqrt{2}",
    r"(\sqrt{2} + \sqrt{3})^2 = 5 + 2\sqrt{6}", r"\sqrt{0^2 + 3^2} = 3", r"\sqrt{2} > 1.4", "8^{2/3} = 4",
    "50% of 80 = 40", "25% * 80 = 20", "1/4 = 25%", "50% + 20% = 70%",
    ".25 * 100 = 25%", "18 / 450 x 100 = 4%",  # the percent sign as a unit on the result
    "10 / 3 = 3.33", "2/3 = 0.67", "2/3 = 0.66", "1/3 = 33.3%", r"\sqrt{2} = 1.41", "3.33 = 10/3",
    "3 < 5", r"2 \le 2", "2 ≤ 3", "7 >= 3", "5 != 4", "5 ≠ 4", r"3 \neq 4", "1/3 ≈ 0.33",
    r"22/7 \approx 3.14",
    "180^\\circ - 50^\\circ = 130^\\circ", "90° + 30° = 120°",
    "1. 3 + 4 = 7", "- 3 + 4 = 7", "* 3 + 4 = 7", "**3 + 4 = 7**", "Step 1: 3 + 4 = 7", "(2 + 3 = 5)",
    "x = 3 + 4 = 7", "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.", "<<5*2=10>>", "<<3/4=.75>>",
    "He pays 12 * 2 = $24, so", "He earns 5 * 20 = 100 a week.", "He walks 2 * 5 = 10km.", "so $-5 + 3 = -2$",
    "120 – 80 - 15 = 25", "sqrt(16) = 4", "3 × 4 = 12 ✓", "Great! 3 + 4 = 7", "# 3 + 4 = 7", "€3 + €4 = €7",
    "50¢ + 25¢ = 75¢",
]

FALSE_FACTS = [
    "5 * 2 = 11", "2 * 23 = 47", "3 + 4 = 8 apples", "$12 / 4 = 4$", r"\frac{3}{4} \cdot 8 = 5", "2^3 = 9",
    "1,200 + 300 = 1,600", "$5.50 * 2 = $12", "0.1 + 0.2 = 0.4", "-5 + 3 = 2", "2(3 + 4) = 10",
    r"\sqrt{8} = 3", "50% of 80 = 30", "20 / 80 = 30%", "<<5*2=11>>",
    "10 / 3 = 3.34",  # neither rounded nor truncated
    "0.1 * 3 = 0.4",  # a stated decimal is not a range
    "10 / 3 = 3",  # a stated integer is exact
    r"\sqrt{2} = 1.42", "5 < 3", r"2 \ge 3", "2 + 2 != 4", "22/7 ≈ 5", "2 + 3 = 5 + 1",
]

NOT_FACTS = [
    # variables, words, constants
    "x = 5", "Tom = 5 apples", "cost = 10", "total = 5 + 3", "x + 3 = 7", "x - 3 = 7", "y -3 = 7", "2x + 3 = 7",
    "2x = 10", "x^2 = 4", "f(2) = 5", "a_1 = 3", "a_{10} = 3", "3 + 4 = 7x", "2(x + 1) = 2x + 2", "n! = 120",
    "5! = 120", "1!=1", r"\binom{5}{2} = 10", "$x$-5 = 10", "2 * 5 = 10x^2", r"2\pi \cdot 3 = 6\pi",
    r"\sin 30 = 0.5", r"\log_2 8 = 3", "1e3 + 1 = 1001",
    r"17 \equiv 2 \pmod 5", "|-3| = 3", "| 3 - 5 | = 2", "~ 5 + 3 = 8", "2 * 3 = 6 !",
    "i^2 = -1",
    # words that make a number part of something bigger
    "17 mod 5 = 2", "3 times 4 = 12", "half of 10 = 5", "3 more than 4 = 7", "3 + 4 = 7 thousand",
    "17 / 5 = 3 R 2", "17 / 5 = 3 remainder 2", "17 / 5 = 3 and 2/5", "3 and 1/2 * 2 = 7",
    # labels, units, conversions: two bare numbers
    "Day 1 = 5 miles", "Day 1 = 5 + 3", "Days 1-3 = 10 miles", "Days 1–3 = 10 + 5", "1 hour = 60 minutes",
    "1 = 100", "1m = 100cm", "48 = 100% + 20%",
    # dates, times, ranges, lists, phone numbers
    "The date is 2023-10-05.", "2023-10-05 = 2008", "It starts at 3:30.", "3:30 = 3", "The ratio 2:3 = 4:6",
    "It takes 5-10 minutes.", "Call 555-123-4567 now.", "(555) 123-4567 = 5", "1. First, add the numbers.",
    "Tom bought 3,4 and 5 = 12", "7,5 + 1 = 8,5",
    # ambiguous forms
    "-2^2 = 4", "3 1/2 * 2 = 7", r"2\frac{1}{2} = 2.5 + 0", "40 - 10% = 36", "100 + 20% = 120",
    r"\begin{pmatrix} 3 \\ 1 \end{pmatrix} = \frac{-3}{10}", "2 (3 + 4) = 14",
    # arrows and non-relations
    "3 + 4 => 7", "3 + 4 -> 7", "3 + 4 is 7", "<br>3 + 4",
]


@pytest.mark.parametrize("text", TRUE_FACTS)
def test_true_facts(text):
    found = checked(text)
    assert found and all(v is True for _, v in found), found


@pytest.mark.parametrize("text", FALSE_FACTS)
def test_false_facts(text):
    found = checked(text)
    assert len(found) == 1 and found[0][1] is False, found


@pytest.mark.parametrize("text", NOT_FACTS)
def test_not_facts(text):
    assert checked(text) == []


def test_a_fact_keeps_its_sides_as_written_and_drops_units():
    (fact,) = facts("Then 39 - 14 = 25 marbles are left.")
    assert (fact.left, fact.relation, fact.right, fact.source) == ("39 - 14", "=", "25", "text")
    (fact,) = facts(r"so $\frac{3}{4} \le 1$")
    assert (fact.left, fact.relation, fact.right) == (r"\frac{3}{4}", "<=", "1")


def test_chains_give_a_fact_per_adjacent_pair():
    assert checked("2 + 3 = 5 = 10 / 2") == [("2 + 3 = 5", True), ("5 = 10 / 2", True)]
    assert checked("2 + 3 = 6 = 12 / 2") == [("2 + 3 = 6", False), ("6 = 12 / 2", True)]
    assert checked("1 < 2 < 3 + 1 > 3") == [("1 < 2", True), ("2 < 3 + 1", True), ("3 + 1 > 3", True)]
    # a running total: "2 + 3 = 5 + 1" in a chain is the writer's 2 + 3 = 5 (alone it is false)
    assert checked("2 + 3 = 5 + 1 = 6") == [("2 + 3 = 5 + 1", True), ("5 + 1 = 6", True)]
    assert checked("2 + 3 = 5 + 1 = 7") == [("2 + 3 = 5 + 1", True), ("5 + 1 = 7", False)]
    assert checked("2 + 3 = 4 + 1 = 5") == [("2 + 3 = 4 + 1", True), ("4 + 1 = 5", True)]
    # a LaTeX align environment continues the chain across rows; a matrix row does not
    align = "\\begin{align*}\nx &= 2 \\cdot 3 + 1 \\\\\n&= 6 + 1 \\\\\n&= 7\n\\end{align*}"
    assert checked(align) == [("2 \\cdot 3 + 1 = 6 + 1", True), ("6 + 1 = 7", True)]


def test_a_bracket_left_open_is_a_remark():
    assert checked("58 + 34 = 92 (58 + 30 = 88, 88 + 4 = 92)") == [
        ("58 + 34 = 92", True), ("58 + 30 = 88", True), ("88 + 4 = 92", True)]
    assert checked("3 + 4 = 7 (seven)") == [("3 + 4 = 7", True)]
    assert checked("2 (3 + 4) = 14") == []  # a product or a label and a sum: not a fact
    assert checked("The total cost is $2.50 + $3.75 = $6.25.") == [("2.50 + 3.75 = 6.25", True)]


def test_a_step_with_many_statements():
    step = ("Tom has 3 apples and buys 4 more, so 3 + 4 = 7 apples. Then x = 7 and 2x = 14.\n"
            "He gives away 2: 7 - 2 = 6. Day 2 = 6 apples. 50% of 6 = 3.")
    assert checked(step) == [("3 + 4 = 7", True), ("7 - 2 = 6", False), ("50% of 6 = 3", True)]
    assert step_verdict(step) == Verdict(true=2, false=1) == (2, 1)


def test_annotations_and_their_text_count_once():
    found = facts("She makes 9 * 2 = $<<9*2=18>>18 every day.")
    assert [(f.source, str(f)) for f in found] == [("annotation", "9*2 = 18")]
    assert step_verdict("He has 16 - 3 - 4 = <<16-3-4=9>>9 eggs and 9 * 2 = <<9*2=18>>18 dollars") == (2, 0)


HOSTILE = [
    "9**9**9 = 1", "10^10^10 = 5", "2^{2^{2^{2^{2}}}} = 4", "2^{4097} = 1", "1" * 5000 + " + 1 = 2",
    "2^{-100000} = 0", "(0.5)^{99999} = 0", "1/0 = 0", "0^0 = 1", "0^{-1} = 0", r"\sqrt{-4} = 2",
    r"\sqrt{" + "9" * 100 + "} = 3", r"\sqrt[100]{2} = 1", "(-8)^{1/3} = -2", r"(1 + \sqrt{2})^{1000} = 1",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_facts_are_unknown_not_false(text):
    (fact,) = facts(text)
    assert check(fact) is None


HOSTILE_STEPS = {
    "110 KB": "1 + 1 = 2. " * 10_000,
    "100 KB without whitespace": "1+1=2" * 20_000,  # nothing is read
    "brackets": "(" * 100_000 + "1 = 1", "roots": r"\sqrt{" * 20_000 + "4} = 2", "powers": "2^" * 50_000 + "2 = 4",
    "relations": "=" * 100_000, "lines": "\n" * 100_000, "bare chain": "1=" * 50_000,
    "long chain": " ".join(f"{i} + 1 = {i + 1} =" for i in range(20_000)),
    "fractions": r"\frac{" * 10_000 + "1" + "}{2}" * 10_000 + " = 1", "minus signs": "-" * 100_000 + "1 = -1",
    "radicals": r"(\sqrt{2}+\sqrt{3}+\sqrt{5}+\sqrt{7}+\sqrt{11}+\sqrt{13})^{12} = 1",
    "big radicand": r"\sqrt{10^{75} + 1} = 3",
}


@pytest.mark.parametrize("text", HOSTILE_STEPS.values(), ids=HOSTILE_STEPS.keys())
def test_hostile_steps_get_a_verdict(text):
    """Bounded by construction (a capped prefix, capped facts, capped sides and values): each
    returns at once. No timing is asserted; a regression would show as a hang."""
    verdict = step_verdict(text)
    assert verdict.true >= 0 and verdict.false >= 0
    assert len(facts(text)) <= 64


def test_a_long_step_is_read_up_to_a_whitespace():
    assert step_verdict("1 + 1 = 2. " * 10_000) == (1, 0)  # one fact, stated 10,000 times


TIMES = ["*", "x", "×", "·", r"\times", r"\cdot"]
DIVIDED = ["/", "÷", r"\div"]
MINUS = ["-", "−", "–"]


def random_statement(rng: random.Random, wrong: bool) -> str:
    """"left = result": one computation in one of the spellings policies use; when `wrong`, the
    stated result is off by one (or by a cent)."""
    a, b = rng.randint(2, 999), rng.randint(2, 99)
    kind = rng.choice(["+", "-", "*", "/", "frac", "percent", "money"])
    if kind == "+":
        left, result = f"{a} + {b}", Fraction(a + b)
    elif kind == "-":
        left, result = f"{a} {rng.choice(MINUS)} {b}", Fraction(a - b)
    elif kind == "*":
        left, result = f"{a} {rng.choice(TIMES)} {b}", Fraction(a * b)
    elif kind == "/":
        left, result = f"{a * b} {rng.choice(DIVIDED)} {b}", Fraction(a)
    elif kind == "frac":
        left, result = r"\frac{%d}{%d}" % (a * b, b), Fraction(a)
    elif kind == "percent":
        pct = rng.choice([10, 20, 25, 50, 75])
        left, result = f"{pct}% of {b * 4}", Fraction(pct * b * 4, 100)
    else:  # money, exact to the cent
        price = Fraction(rng.randint(100, 9999), 100)
        left, result = f"${float(price):.2f} * {b}", price * b
    if wrong:
        result += Fraction(1, 100) if kind == "money" else 1
    if result.denominator != 1:
        shown = f"{float(result):.2f}"
    elif abs(result) >= 1000 and rng.random() < 0.5:
        shown = f"{int(result):,}"
    else:
        shown = str(int(result))
    return f"{left} = {shown}"


CONTEXTS = ["{s}", "So {s} apples.", "${s}$", "\\[ {s} \\]", "Step 3: {s}", "- {s}", "**{s}**", "He has {s} left.",
            "Then {s}, and that is it.", "We get {s} (the total).", "Total: {s} dollars\n\nNext"]


@pytest.mark.parametrize("wrong", [False, True], ids=["right", "wrong"])
def test_random_statements_in_many_spellings(wrong):
    """Generated computations, right or off by one, in the spellings and contexts of policy output:
    each is found, and checks true exactly when it is right."""
    rng = random.Random(19)
    for _ in range(400):
        text = rng.choice(CONTEXTS).format(s=random_statement(rng, wrong))
        assert [v for _, v in checked(text)] == [not wrong], text


# --- the verifier: a path's verdict so far -----------------------------------------------------

KEY = (7, 0)


def item(node: int, parent: int, text: str, key=KEY) -> StepToScore:
    return StepToScore(key=key, node_id=node, parent_id=parent, text=text, logprobs=[])


def test_path_scores_carry_the_path_verdict():
    v = ArithmeticVerifier()
    assert v.name == "arithmetic" and v.engine is None and v.neutral == DEFAULT_NEUTRAL
    v.begin(KEY, "Tom has 3 apples and buys 4 more. He doubles them. How many?")
    n = DEFAULT_NEUTRAL
    assert v.score([item(1, 0, "Tom starts with 3 apples.\n\n")]) == [n]
    assert v.score([item(2, 1, "He buys 4, so 3 + 4 = 7.\n\n"),  # verified
                    item(3, 1, "He buys 4, so 3 + 4 = 8.\n\n"),  # refuted
                    item(4, 1, "He buys some more.\n\n")]) == [1.0, 0.0, n]
    assert v.score([item(5, 2, "Then he doubles them.\n\n"),  # a verified path stays verified
                    item(6, 3, "Then 8 * 2 = 16.\n\n"),  # a refuted path stays refuted
                    item(7, 4, "Doubling: 7 * 2 = 14.\n\n"),
                    item(8, 2, "Doubling: 7 * 2 = 15.\n\n")]) == [1.0, 0.0, 1.0, 0.0]
    assert v.verdict(KEY, 2) == Verdict(1, 0)
    assert v.verdict(KEY, 6) == Verdict(1, 1)
    assert v.verdict(KEY, 8) == Verdict(1, 1)
    assert v.verdict(KEY, 4) == Verdict(0, 0)
    # with aggregation "last" (the default) a path's score is its verdict; refuted < unproven < verified
    assert aggregate([n, 0.0, 0.0], "last") < aggregate([n, n], "last") < aggregate([n, 1.0, 1.0], "last")


def test_keys_are_independent_and_forget_and_end_drop_state():
    v = ArithmeticVerifier(neutral=0.5)
    other = (8, 1)
    v.begin(KEY, "p")
    v.begin(other, "q")
    assert v.score([item(1, 0, "2 + 2 = 5"), item(1, 0, "2 + 2 = 4", key=other)]) == [0.0, 1.0]
    assert v.score([item(2, 1, "ok"), item(2, 1, "ok", key=other)]) == [0.0, 1.0]
    v.forget(KEY, [1])
    assert v.verdict(KEY, 1) is None and v.verdict(KEY, 2) == (0, 1) and v.verdict(other, 1) == (1, 0)
    # a child of a forgotten node starts from nothing stated (searches never do this)
    assert v.score([item(3, 1, "and so on")]) == [0.5]
    v.end(KEY)
    assert v.verdict(KEY, 2) is None and v.verdict(other, 2) == (1, 0)
    v.end(other)
    assert v._verdicts == {}


def test_neutral_must_be_a_score():
    with pytest.raises(ValueError):
        ArithmeticVerifier(neutral=1.5)


class StubVerifier(Verifier):
    """Scores every step 0.8 and records what it was asked."""

    name = "stub"

    def __init__(self):
        self.engine = object()
        self.calls = []

    def begin(self, key, problem):
        self.calls.append(("begin", key))

    def score(self, items):
        self.calls.append(("score", [i.node_id for i in items]))
        return [0.8] * len(items)

    def forget(self, key, node_ids):
        self.calls.append(("forget", key, list(node_ids)))

    def end(self, key):
        self.calls.append(("end", key))

    def close(self):
        self.calls.append(("close",))


def test_combined_verifier_scales_the_other_score_by_the_arithmetic_verdict():
    stub = StubVerifier()
    v = CombinedVerifier(stub, neutral=0.25)
    assert v.name == "arithmetic+stub" and v.engine is stub.engine
    v.begin(KEY, "p")
    scores = v.score([item(1, 0, "Let us count."), item(2, 0, "3 + 4 = 7"), item(3, 0, "3 + 4 = 8")])
    assert scores == pytest.approx([0.8 * 0.25, 0.8, 0.0])
    assert v.score([item(4, 3, "3 + 4 = 7")]) == [0.0]  # the other verifier still scores it
    assert v.verdict(KEY, 4) == (1, 1)
    v.forget(KEY, (i for i in [1, 2]))  # an iterator reaches both verifiers whole
    assert v.verdict(KEY, 1) is None and v.verdict(KEY, 3) == (0, 1)
    v.end(KEY)
    v.close()
    assert stub.calls == [("begin", KEY), ("score", [1, 2, 3]), ("score", [4]), ("forget", KEY, [1, 2]),
                          ("end", KEY), ("close",)]
    assert v.verdict(KEY, 3) is None


# --- reference solutions: their arithmetic is right -------------------------------------------

def load(name: str, shared_file: str) -> list[dict]:
    """A data set's rows: GSM8K ships with tts; MATH-500 is read where `tts data pull` put it, or
    from ../shared/data (outside the repository), else the test is skipped."""
    from tts_cli.datasets import DataError, resolve_data
    try:
        path = resolve_data(name)
    except DataError:
        path = SHARED_DATA / shared_file
        if not path.exists():
            pytest.skip(f"{name}: not pulled, and {path} not found (it lives outside the repository)")
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


# (line of the file, fact): genuine errors in the references, checked by hand.
KNOWN_GSM8K_ERRORS = {
    (502, "364 / 4 = 273"),  # means 3/4 * 364 = 273 (its annotation says so); 364 / 4 is 91
    (1025, "32 - 20 = 300"),  # "$32 - $20 = $300": a typo for $320 - $20 (the revenue was $320)
}
KNOWN_MATH500_ERRORS = {
    (24, r"1 = \sqrt{11-2} + 4"),  # stated to be false: checking x = 1 shows it is extraneous
    (175, r"(-4)^2 + 4 \cdot 1 \cdot (-1) = 20"),  # a sign slip: the discriminant is (-4)^2 - 4*1*(-1) = 20
}


def test_gsm8k_calculator_annotations_all_check_true():
    rows = load("gsm8k", "gsm8k_test.jsonl")
    annotations = [a for row in rows for a in re.findall(r"<<([^<>]*)>>", row["answer"])]
    assert len(annotations) > 4000
    for a in annotations:
        found = facts(f"<<{a}>>")
        assert [(f.source, check(f)) for f in found] == [("annotation", True)], a


def false_facts(rows: list[dict], field: str, separator: str) -> tuple[set, float]:
    """The (line of the file, fact) pairs checked false in the solutions, and the share of steps
    that state a fact."""
    false, steps, with_fact = set(), 0, 0
    for number, row in enumerate(rows, start=1):
        for step in row[field].split(separator):
            found = facts(step)
            steps += 1
            with_fact += bool(found)
            false |= {(number, str(f)) for f in found if check(f) is False}
    return false, with_fact / steps


def test_gsm8k_references_state_no_false_fact():
    false, share = false_facts(load("gsm8k", "gsm8k_test.jsonl"), "answer", "\n")
    assert false == KNOWN_GSM8K_ERRORS
    assert share > 0.65  # measured: 71% of the lines state a fact


def test_math500_references_state_no_false_fact():
    false, share = false_facts(load("math500", "math500.jsonl"), "solution", "\n\n")
    assert false == KNOWN_MATH500_ERRORS
    assert share > 0.25  # measured: 31% of the steps state a fact
