"""--repair: a candidate whose one slip is its last sum answers that sum's true result, in a live
search and in `tts rescore` alike."""

import pytest
from cli_helpers import FAST, one_line_error, tts

from fake_engine import FakeEngine
from tts_cli.datasets import Problem
from tts_cli.grade import record_for
from tts_cli.rescore import rescore_record
from tts_cli.search import SearchConfig, run_search
from tts_cli.verifiers.arithmetic import ArithmeticVerifier, repaired_answer


@pytest.mark.parametrize("steps, answer, repaired", [
    (["5 * 4 = 20\n\n", "20 + 14 = 35\n\n", "\\boxed{35}"], "35", "34"),  # the last sum slipped
    (["5 * 4 = 21\n\n", "\\boxed{21}"], "21", "20"),
    (["20% of 120 = 20. \\boxed{20}"], "20", "24"),
    (["It costs 10 / 4 = 2 dollars: \\boxed{\\$2}"], "\\$2", "2.5"),
    (["1 / 3 = 0.5, so \\boxed{0.5}"], "0.5", "1/3"),
    (["7 - 9 = 2. \\boxed{2}"], "2", "-2"),
    (["5 * 4 = 21\n\n", "21 + 14 = 35\n\n", "\\boxed{35}"], "35", None),  # an earlier slip flowed on
    (["5 * 4 = 20\n\n", "20 + 14 = 35\n\n", "\\boxed{36}"], "36", None),  # the answer is not the sum
    (["5 * 4 = 20\n\n", "\\boxed{20}"], "20", None),  # nothing false
    (["The answer is \\boxed{7}"], "7", None),  # nothing stated
    (["5 * 4 = 21\n\n", "\\boxed{21}"], None, None),  # no answer
    (["2 < 1 = 7. \\boxed{7}"], "7", None),
    (["9^9^9 = 4. \\boxed{4}"], "4", None),  # beyond the limits: unknown, not false
])
def test_only_a_slip_in_the_last_sum_is_repaired(steps, answer, repaired):
    assert repaired_answer(steps, answer) == repaired


# Best-of-N N=4 over the fake engine: branch i writes PATHS[i]. Two paths answer 18 from a
# wrong last sum (12 + 5 = 18), one states no sum and answers 19, one slips early (3 * 4 = 13)
# and answers 18.
PATHS = [["3 * 4 = 12 pens in boxes.\n\n", "12 + 5 = 18. So \\boxed{18}"],
         ["The boxes hold 3 * 4 = 12 pens.\n\n", "12 + 5 = 18 and \\boxed{18}"],
         ["There are many pens.\n\n", "I count 19 of them: \\boxed{19}"],
         ["3 * 4 = 13.\n\n", "13 + 5 = 18. \\boxed{18}"]]


def script(steps, branch):
    if not steps:
        return PATHS[branch][0], "stop"
    return next(p[1] for p in PATHS if p[0] == steps[0]), "eos"


def best_of_n(repair):
    config = SearchConfig(n=4, max_steps=4, repair=repair)
    return run_search("best-of-n", "Tom has 3 boxes of 4 pens and 5 more. How many pens?", FakeEngine(script),
                      ArithmeticVerifier(), config)


def test_a_live_search_votes_with_the_repaired_answers():
    plain, repaired = best_of_n(False), best_of_n(True)
    assert plain.answer == "19"  # the one path no check refuted
    assert repaired.answer == "17"  # the two paths whose last sum slipped, corrected and checked
    answers = sorted((c.answer, c.repaired_from or "", c.score) for c in repaired.candidates)
    assert answers == [("17", "18", 1.0), ("17", "18", 1.0), ("18", "", 0.0), ("19", "", 0.05)]
    assert repaired.votes["17"]["count"] == 2
    assert any("2 candidates answer the corrected result" in n for n in repaired.notes)


def test_rescore_reproduces_a_repaired_run_and_undoes_it_without_repair():
    problem = Problem(id="1", problem="Tom has 3 boxes of 4 pens and 5 more. How many pens?", answer="17", line=1)
    live = record_for(problem, best_of_n(True))
    again = rescore_record(live, ArithmeticVerifier(), (1, 0), selection="vote", aggregation="last",
                           verifier_name="arithmetic", repair=True)
    assert [(c["answer"], c.get("repaired_from"), c["score"]) for c in again["candidates"]] == \
           [(c["answer"], c.get("repaired_from"), c["score"]) for c in live["candidates"]]
    assert again["answer"] == live["answer"] and again["votes"] == live["votes"]
    undone = rescore_record(live, ArithmeticVerifier(), (2, 0), selection="vote", aggregation="last",
                            verifier_name="arithmetic")
    plain = record_for(problem, best_of_n(False))
    assert [c["answer"] for c in undone["candidates"]] == [c["answer"] for c in plain["candidates"]]
    assert not any("repaired_from" in c for c in undone["candidates"])


def test_repair_needs_the_arithmetic_verifier(tiny_model, tmp_path):
    r = tts("solve", "What is 2 + 2?", "--policy", tiny_model, "--strategy", "best-of-n", "--prm", "confidence",
            "--repair", *FAST)
    one_line_error(r, "--repair: needs --prm arithmetic")


def test_tts_rescore_repair(tiny_model, tmp_path):
    from cli_helpers import read_records, write_jsonl
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 3 + 2?", "answer": "#### 5"}])
    run = tmp_path / "maj.jsonl"
    r = tts("grade", data, "--out", run, "--policy", tiny_model, "--strategy", "majority", "--n", "2", *FAST)
    assert r.exit_code == 0, r.output
    out = tmp_path / "repaired.jsonl"
    r = tts("rescore", run, "--prm", "arithmetic", "--repair", "--out", out)
    assert r.exit_code == 0, r.output
    [rec] = read_records(out)
    assert rec["config"]["repair"] is True and rec["verifier"] == "arithmetic"
    one_line_error(tts("rescore", run, "--prm", "confidence", "--repair", "--out", tmp_path / "x.jsonl"),
                   "--repair: needs --prm arithmetic")
