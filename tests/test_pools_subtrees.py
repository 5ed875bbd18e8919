"""DVTS at smaller budgets from the subtrees of one DVTS run (tts_cli.pools.subtrees) against
brute force and the live search. No model runs."""

import itertools

import numpy as np
import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from test_pools import walk_script
from tts_cli.answers import answers_match
from tts_cli.pools import Pool, PoolError
from tts_cli.pools.subtrees import subtree_accuracy
from tts_cli.search import SearchConfig, run_search
from tts_cli.search.common import choose_answer, group_answers


def dvts_record(seed, n, m, aggregation="last"):
    config = SearchConfig(n=n, beam_width=m, aggregation=aggregation, selection="vote", max_steps=4)
    result = run_search("dvts", "p", FakeEngine(walk_script(seed)), ScoreInTextVerifier(), config)
    record = {"id": seed, "reference": "2", "config": result.config,
              "candidates": [c.as_dict() for c in result.candidates]}
    return result, record


def test_every_candidate_says_its_subtree():
    result, _ = dvts_record(0, 8, 2)
    assert {c.branch for c in result.candidates} == {0, 1, 2, 3}
    assert all(c.branch is None for c in run_search("best-of-n", "p", FakeEngine(walk_script(0)),
                                                    ScoreInTextVerifier(), SearchConfig(n=4)).candidates)


@pytest.mark.parametrize("aggregation", ["last", "min"])
def test_at_the_runs_budget_the_estimate_is_the_live_pick_and_below_it_brute_force(aggregation):
    for seed in range(20):
        result, record = dvts_record(seed, 8, 2, aggregation)
        pool = Pool.from_record(record)
        assert subtree_accuracy([pool], 8, 2).mean == float(answers_match(result.answer, "2"))
        # budget 4: every pair of the 4 subtrees, PRM-Vote over their candidates in recorded order
        cands = result.candidates
        picks = []
        for pair in itertools.combinations(range(4), 2):
            chosen = [c for c in cands if c.branch in pair]
            picks.append(answers_match(choose_answer(chosen, group_answers(chosen), "vote"), "2"))
        assert subtree_accuracy([pool], 4, 2).mean == pytest.approx(np.mean(picks))


def test_records_without_subtrees_and_impossible_budgets_are_refused_in_one_line():
    _, record = dvts_record(1, 8, 2)
    with pytest.raises(PoolError, match="multiple of its width"):
        subtree_accuracy([Pool.from_record(record)], 5, 2)
    with pytest.raises(PoolError, match="needs 5 subtrees"):
        subtree_accuracy([Pool.from_record(record)], 10, 2)
    for c in record["candidates"]:
        del c["branch"]
    with pytest.raises(PoolError, match="which subtree"):
        subtree_accuracy([Pool.from_record(record)], 4, 2)


def test_calibrate_runs_dvts_at_its_largest_budget_only_and_estimates_the_rest(tmp_path):
    from test_auto import Script, scripted_problems, small_grid
    from tts_cli.calibrate import calibrate
    from tts_cli.search import Candidate, SearchResult

    class DvtsScript(Script):
        """DVTS runs of n/2 subtrees, two paths each: subtree 0 right on easy problems."""

        def __call__(self, pairs):
            for setting, problem in pairs:
                if setting.strategy != "dvts":
                    yield from super().__call__([(setting, problem)])
                    continue
                self.solved.append((setting, problem.id))
                easy = problem.problem.startswith("easy")
                cands = [Candidate(node_id=i, steps=["s"], step_scores=[0.9 if b == 0 else 0.2], score=0.9 if b == 0 else 0.2,
                                   answer="1" if (easy and b == 0) else "2", answer_method="boxed", finish_reason="eos",
                                   tokens=10, branch=b)
                         for i, b in enumerate(b for b in range(setting.n // 2) for _ in range(2))]
                yield (setting, problem), SearchResult(problem="p", strategy="dvts", config={"aggregation": "last"},
                                                       answer="1" if easy else "2", candidates=cands, tree=[], votes={},
                                                       compute={"flops": 3.0 * setting.n, "seconds": 0.0, "policy": {}})
    script = DvtsScript()
    profile = calibrate(scripted_problems(4, 4), [4, 8], tmp_path / "runs", solve_many=script, has_verifier=True,
                        policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid(strategies=("majority", "dvts")),
                        holdout=0)
    assert {s.key for s, _ in script.solved if s.role is None} == {"dvts_n8_m2_vote_last"}  # no run at 4
    estimated = {e["setting"]: e for e in profile.estimates}
    four = estimated["dvts_n4_m2_vote_last"]
    assert four["estimated"] and four["run"] == "dvts_n8_m2_vote_last" and four["flops"] == pytest.approx(12.0)
    # easy: 2 of the 4 subtrees chosen; right when subtree 0 (scores 0.9 twice against 0.4) is among them
    assert four["accuracy"] == pytest.approx(0.5 * 3 / 6)
    assert not estimated["dvts_n8_m2_vote_last"]["estimated"]
