"""Compute-optimal TTS on the scripted fake engine: calibrate, profiles, and --strategy auto."""

import re

import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.calibrate import Setting, calibrate, candidate_settings
from tts_cli.datasets import Problem
from tts_cli.difficulty import Bins, agreement
from tts_cli.profile import Choice, Profile, ProfileError
from tts_cli.search import Candidate, SearchConfig, SearchResult, run_search


def fake_result(answer, flops, candidate_answers=()):
    candidates = [Candidate(node_id=i, steps=[], step_scores=[], score=None, answer=a, answer_method="boxed",
                            finish_reason="eos") for i, a in enumerate(candidate_answers)]
    return SearchResult(problem="p", strategy="x", config={}, answer=answer, candidates=candidates, tree=[],
                        votes={}, compute={"flops": flops, "seconds": 0.0, "policy": {}})


def test_calibrate_picks_the_scripted_optimum_in_each_bin(tmp_path):
    problems = [Problem(id=f"{kind}{i}", problem=f"{kind} {i}", answer="1", line=i + (0 if kind == "easy" else 10))
                for kind in ("easy", "hard") for i in range(4)]
    pass1 = {"easy": 0.8, "hard": 0.0}
    # Scripted accuracies: on easy problems majority vote is always right (and cheapest);
    # on hard ones only beam search with M=4 is, and PRM-Max Best-of-N half the time.
    def solve(setting: Setting, problem: Problem):
        kind = problem.problem.split()[0]
        idx = int(problem.problem.split()[1])
        flops = {"cot": 0.25, "majority": 1.0, "best-of-n": 2.0, "beam": 3.0, "dvts": 3.0}[setting.strategy] * setting.n
        if kind == "easy":
            right = setting.strategy in ("majority", "best-of-n")
        else:
            right = (setting.strategy == "beam" and setting.beam_width == 4) or \
                    (setting.strategy == "best-of-n" and setting.selection == "max" and idx % 2 == 0)
        return fake_result("1" if right else "2", flops)

    solved = []

    def solve_many(pairs):
        for setting, problem in pairs:
            solved.append((setting.key, problem.id))
            if setting.key == "majority_n5":  # the difficulty run: 5 samples, pass@1 as scripted
                right = round(5 * pass1[problem.problem.split()[0]])
                yield (setting, problem), fake_result("1", 5.0, ["1"] * right + ["2"] * (5 - right))
            else:
                yield (setting, problem), solve(setting, problem)

    profile = calibrate(problems, [4, 8], tmp_path / "runs", solve_many=solve_many, samples=5,
                        has_verifier=True, policy={"name": "fake", "file": "fake.gguf"}, prm="scripted")
    for budget in (4, 8):
        easy = profile.lookup("easy", budget)
        assert (easy.strategy, easy.accuracy) == ("majority", 1.0)  # ties with best-of-n, fewer FLOPs
        hard = profile.lookup("hard", budget)
        assert (hard.strategy, hard.beam_width, hard.accuracy) == ("beam", 4, 1.0)
    assert profile.lookup("medium", 4) is None
    assert profile.meta["problems_per_bin"] == {"easy": 4, "medium": 0, "hard": 4}
    assert {p["setting"] for p in profile.frontier} >= {"majority_n4"}
    # resumable: a second run reads every result back instead of solving again
    # CoT does not depend on N: it runs once per problem, not once per budget
    assert sum(1 for key, _ in solved if key.startswith("cot")) == len(problems)
    # every (setting, problem) was solved exactly once, problem by problem
    assert len(solved) == len(set(solved))
    assert [pid for _, pid in solved] == sorted([pid for _, pid in solved], key=[p.id for p in problems].index)

    def nothing_left(pairs):
        for pair in pairs:
            raise AssertionError(f"solved again: {pair}")
        yield from ()
    again = calibrate(problems, [4, 8], tmp_path / "runs", solve_many=nothing_left, samples=5,
                      has_verifier=True, policy={"file": "fake.gguf"}, prm="scripted")
    assert [c.strategy for c in again.choices] == [c.strategy for c in profile.choices]


def test_candidate_settings_cover_the_hyper_parameters():
    keys = {s.key for s in candidate_settings(8, has_verifier=True)}
    assert {"majority_n8", "best-of-n_n8_vote_last", "best-of-n_n8_max_min", "beam_n8_m2_vote_last",
            "beam_n8_m4_vote_min", "dvts_n8_m4_vote_last"} <= keys
    assert {s.key for s in candidate_settings(8, has_verifier=False)} == {"cot_n8", "majority_n8"}
    assert not any(s.beam_width == 4 for s in candidate_settings(2, has_verifier=True))


def make_profile(tmp_path, policy_file="fake.gguf", prm="scripted"):
    profile = Profile(policy={"name": "fake", "file": policy_file}, prm=prm, bins=Bins(),
                      choices=[Choice(bin="easy", budget=8, strategy="majority", accuracy=1.0, flops=8.0, problems=3),
                               Choice(bin="hard", budget=8, strategy="beam", accuracy=0.5, flops=30.0, problems=3,
                                      beam_width=2, selection="vote", aggregation="last")])
    path = tmp_path / "profile.yaml"
    profile.save(path)
    return path


def test_profile_lookup_after_a_round_trip(tmp_path):
    # (that a profile loads back equal to the one saved, bins included, is pinned in
    # test_claims.test_profile_round_trips_to_the_saved_object)
    path = make_profile(tmp_path)
    loaded = Profile.load(path)
    assert [c.strategy for c in loaded.choices] == ["majority", "beam"]
    assert loaded.lookup("hard", 8).settings() == {"strategy": "beam", "n": 8, "beam_width": 2,
                                                   "selection": "vote", "aggregation": "last"}
    assert loaded.lookup("easy", 32).budget == 8  # the largest measured budget below
    assert loaded.bins == Bins()


@pytest.mark.parametrize("text,expected", [
    (None, "does not exist"),
    ("tts_profile: 1\nchoices: [\n", ":3: not valid YAML"),
    ("just: a mapping\n", "not a tts profile"),
    ("tts_profile: 1\nchoices:\n  - {bin: tepid, budget: 4, strategy: beam, accuracy: 1, flops: 1, problems: 1}\n",
     ":3: choices[1].bin: input should be 'easy', 'medium' or 'hard', got 'tepid'"),
    ("tts_profile: 1\nchoices:\n  - {bin: easy, budget: 4, strategy: beam, accuracy: high, flops: 1, problems: 1}\n",
     ":3: choices[1].accuracy: input should be a valid number"),
    ("tts_profile: 1\nchoices: []\n", "choices: list should have at least 1 item"),
])
def test_bad_profiles_give_clear_errors(tmp_path, text, expected):
    path = tmp_path / "p.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ProfileError, match=re.escape(expected)) as info:
        Profile.load(path)
    assert str(path) in str(info.value)


def easy_script(steps, branch):
    return "The answer is \\boxed{7} |0.9", "eos"  # every probe path agrees: easy


def hard_script(steps, branch):
    return ("I am not sure.\n\n" if len(steps) < 2 else "No idea, sorry."), ("stop" if len(steps) < 2 else "eos")


@pytest.mark.parametrize("script,difficulty,chosen", [(easy_script, "easy", "majority"), (hard_script, "hard", "beam")])
def test_auto_sends_easy_and_hard_problems_where_the_profile_says(tmp_path, script, difficulty, chosen):
    engine = FakeEngine(script)
    engine.model.path = "fake.gguf"
    cfg = SearchConfig(n=8, probe=2, profile=str(make_profile(tmp_path)))
    result = run_search("auto", "p", engine, ScoreInTextVerifier(), cfg)
    assert result.strategy == "auto"
    assert result.auto["difficulty"] == difficulty and result.auto["chosen"] == chosen
    assert "profile" in result.auto["reason"]
    d = result.as_dict()
    assert d["predicted_difficulty"] == difficulty and d["auto"]["chosen"] == chosen
    # the probe's 2 paths are candidates too, and the second stage used the other 6 of N=8
    assert len(result.candidates) >= 2 + (6 if chosen == "majority" else 1)
    assert result.auto["settings"]["n"] == 6
    if difficulty == "easy":
        assert result.answer == "7"
    assert not engine.live


def test_auto_without_profile_falls_back_to_the_papers_findings_and_says_so(tmp_path):
    engine = FakeEngine(hard_script)
    result = run_search("auto", "p", engine, ScoreInTextVerifier(), SearchConfig(n=8, probe=2))
    assert result.auto["chosen"] == "beam" and "paper" in result.auto["reason"]
    assert any("no profile" in n for n in result.notes)


def test_profile_for_other_models_warns_and_falls_back(tmp_path):
    engine = FakeEngine(easy_script)
    engine.model.path = "other.gguf"
    cfg = SearchConfig(n=8, probe=2, profile=str(make_profile(tmp_path)))
    result = run_search("auto", "p", engine, ScoreInTextVerifier(), cfg)
    assert any("was made for fake.gguf" in n for n in result.notes)
    assert "paper" in result.auto["reason"]


def test_agreement_estimates_pass_at_1():
    from tts_cli.search.types import Candidate

    def c(a):
        return Candidate(node_id=0, steps=[], step_scores=[], score=None, answer=a, answer_method="boxed",
                         finish_reason="eos")
    # pairs that agree: ("1", "1.0") of 6 pairs -> sqrt(1/6)
    assert agreement([c("1"), c("1.0"), c("2"), c(None)]) == pytest.approx((1 / 6) ** 0.5)
    assert agreement([c("7"), c("7"), c("7")]) == 1.0
    assert agreement([c("1"), c("2")]) == 0.0  # two different answers say nothing good
    assert agreement([c(None), c(None)]) == 0.0
    assert Bins().of(0.5) == "easy" and Bins().of(0.1) == "medium" and Bins().of(0.09) == "hard"


def test_calibrate_chooses_the_temperature_per_bin_and_auto_samples_at_it(tmp_path):
    problems = [Problem(id=f"p{i}", problem=f"p {i}", answer="1", line=i + 1) for i in range(4)]

    def solve_many(pairs):  # majority is right only at T=0.3; the difficulty run says: easy
        for setting, problem in pairs:
            right = setting.strategy == "majority" and setting.temperature == 0.3 or setting.key == "majority_n5"
            yield (setting, problem), fake_result("1" if right else "2", 1.0, ["1", "2"] if right else ["2", "1"])
    plan = lambda b: candidate_settings(b, has_verifier=False, temperatures=(0.3, 0.7))  # noqa: E731
    assert {s.key for s in plan(4)} == {"cot_n4", "majority_n4_t0.3", "majority_n4_t0.7"}
    profile = calibrate(problems, [4], tmp_path / "runs", solve_many=solve_many, samples=5, has_verifier=False,
                        policy={"file": "fake.gguf"}, prm=None, settings_for=plan)
    choice = profile.lookup("easy", 4)
    assert choice.settings() == {"strategy": "majority", "n": 4, "temperature": 0.3}
    assert choice.pass_at_n == 1.0  # a right candidate at both temperatures: pass@N is kept per setting
    assert all("pass_at_n" in p for p in profile.frontier)
    profile.save(tmp_path / "profile.yaml")
    engine = FakeEngine(easy_script)
    engine.model.path = "fake.gguf"
    result = run_search("auto", "p", engine, None, SearchConfig(n=8, probe=2, temperature=0.9,
                                                                 profile=str(tmp_path / "profile.yaml")))
    assert result.auto["chosen"] == "majority" and result.auto["settings"]["temperature"] == 0.3
    temps = [s.sampling.temperature for s in engine.started]
    assert temps.count(0.9) == 2 and temps.count(0.3) == 6  # the probe at the run's T, the rest at the profile's


def test_headroom_is_the_share_of_the_oracle_gain_over_cot_captured():
    from tts_cli.compare import headroom_captured
    rows = [{"strategy": "cot", "n": 1, "accuracy": 0.2, "pass_at_n": 0.2},
            {"strategy": "best-of-n", "n": 16, "accuracy": 0.35, "pass_at_n": 0.5},
            {"strategy": "majority", "n": 16, "accuracy": 0.15, "pass_at_n": 0.5},
            {"strategy": "beam", "n": 4, "accuracy": 0.2, "pass_at_n": 0.2}]
    headroom_captured(rows)
    assert [r["headroom"] for r in rows] == [None, 0.5, round(-0.05 / 0.3, 4), None]
