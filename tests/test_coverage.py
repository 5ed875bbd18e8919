"""The coverage verifier: which numbers a problem gives, which a path's arithmetic uses, what a
path scores, and how it combines with the arithmetic check. No model."""

from __future__ import annotations

from fractions import Fraction

import pytest
from test_arithmetic import load

from tts_cli.rescore import rescore_record
from tts_cli.verifiers.arithmetic import CombinedVerifier
from tts_cli.verifiers.base import StepToScore
from tts_cli.verifiers.coverage import (FLOOR, CoverageVerifier, coverage, numbers_stated, problem_numbers,
                                       share_used)

KEY = (0, 0)


def item(node, parent, text, key=KEY):
    return StepToScore(key=key, node_id=node, parent_id=parent, text=text, logprobs=[])


def values(problem):
    return [set(a) for a in problem_numbers(problem)]


def test_problem_numbers_by_value():
    assert values("A house for $80,000 and $1,200.50 of repairs; 3,4 or 5 rooms; .5 of them; 12 and 12.") == \
        [{80000}, {Fraction(2401, 2)}, {3}, {4}, {5}, {Fraction(1, 2)}, {12}]
    assert values("It rose by 150%.") == [{150, Fraction(3, 2)}]  # used as 150 or as 1.5
    assert values("Three apples, twice as many pears.") == []  # numbers in words are not counted
    assert values("Day 2024") == [{2024}]


def test_numbers_stated_come_from_facts_only():
    assert numbers_stated("He pays 6 * 4 = 24 dollars for 3 days.") == {6, 4, 24}  # "3 days" is not arithmetic
    assert numbers_stated("80,000*1.5=<<80000*1.5=120000>>120,000") == {80000, Fraction(3, 2), 120000}
    assert numbers_stated("It is 50% of 10, so 50% * 10 = 5") == {50, Fraction(1, 2), 10, 5}
    assert numbers_stated("No arithmetic here.") == frozenset()
    assert numbers_stated(r"$\sqrt{16} = 4$") == {16, 4}  # no implicit index 2
    assert numbers_stated(r"$\sqrt[3]{27} = 3$") == {3, 27}


def test_coverage_is_the_share_used_squared_at_least_the_floor():
    given = problem_numbers("5 dumplings at 4 dollars each and a drink for 14 dollars")
    assert share_used(given, frozenset({5, 4, 20})) == pytest.approx(2 / 3)
    assert coverage(given, frozenset({5, 4, 20})) == pytest.approx(4 / 9)
    assert coverage(given, frozenset({5, 4, 20, 14, 34})) == 1.0
    assert coverage(given, frozenset()) == FLOOR
    assert coverage([], frozenset()) == 1.0  # a problem with no numbers: nothing to miss


def test_path_scores_grow_along_the_path_and_keys_are_independent():
    v = CoverageVerifier()
    v.begin(KEY, "Omar has 82 stamps and puts 6 stamps on each of 3 letters. How many are left?")
    other = (1, 0)
    v.begin(other, "What is 2 + 2?")
    assert v.score([item(1, 0, "He uses 6 * 3 = 18 stamps."), item(2, 0, "Omar has 82 stamps."),
                    item(1, 0, "2 + 2 = 4", key=other)]) == pytest.approx([4 / 9, FLOOR, 1.0])
    assert v.score([item(3, 1, "82 - 18 = 64"), item(4, 2, "82 - 6 = 76")]) == pytest.approx([1.0, 4 / 9])
    v.forget(KEY, [1])
    assert v.score([item(5, 1, "Done.")]) == [FLOOR]  # a forgotten parent counts as nothing used
    v.end(KEY)
    assert v.score([item(2, 1, "2 + 2 = 4", key=other)]) == [1.0]
    v.end(other)
    assert not v._used and not v._given


def cand(steps, answer):
    return {"answer": answer, "steps": steps, "step_scores": [], "step_confidence": [0.5] * len(steps),
            "finish_reason": "boxed", "answer_method": "boxed"}


def test_arithmetic_plus_coverage_votes_for_the_path_that_uses_every_number():
    # Two paths compute correctly but leave the drink out; one uses every number; one is refuted.
    rec = {"key": "k", "id": "1", "problem": "Nora orders 5 dumplings at 4 dollars each and a drink for 14 dollars. "
                                             "What is the total bill in dollars?", "reference": "34",
           "candidates": [cand(["5 * 4 = 20 dollars.\n\n", "\\boxed{20}"], "20")] * 2 +
                         [cand(["5 * 4 = 20 dollars.\n\n", "20 + 14 = 34\n\n", "\\boxed{34}"], "34"),
                          cand(["5 * 4 + 14 = 35\n\n", "\\boxed{35}"], "35")],
           "compute": {"policy": {"flops": 10.0}, "flops": 10.0}}
    plain = rescore_record(rec, CombinedVerifier(CoverageVerifier()).arithmetic, (1, 0), selection="vote",
                           aggregation="last", verifier_name="arithmetic")
    assert plain["answer"] == "20"  # every verified path votes alike: the majority wins
    new = rescore_record(rec, CombinedVerifier(CoverageVerifier()), (2, 0), selection="vote", aggregation="last",
                         verifier_name="arithmetic+coverage")
    assert new["answer"] == "34" and new["correct"]
    assert [c["score"] for c in new["candidates"]] == pytest.approx([4 / 9] * 2 + [1.0, 0.0])
    assert new["compute"]["flops"] == 10.0  # free: no model compute


def test_gsm8k_references_use_the_numbers_their_problem_gives():
    rows = load("gsm8k", "gsm8k_test.jsonl")
    shares = []
    for row in rows:
        used = frozenset().union(*(numbers_stated(line) for line in row["answer"].split("####")[0].split("\n")))
        shares.append(coverage(problem_numbers(row["question"]), used))
    # measured: every number in 84% of the references, 93% of them on average; a right solution
    # need not use them all, which is why a share scores the path rather than all or nothing
    assert sum(s == 1.0 for s in shares) / len(shares) > 0.8
    assert sum(shares) / len(shares) > 0.9
