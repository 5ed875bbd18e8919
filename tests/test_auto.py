"""Compute-optimal TTS on the scripted fake engine: calibrate, profiles, and --strategy auto."""

import json
import re

import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.calibrate import Setting, calibrate, candidate_settings
from tts_cli.datasets import Problem
from tts_cli.difficulty import Bins, agreement
from tts_cli.profile import Choice, Profile, ProfileError
from tts_cli.search import Candidate, SearchConfig, SearchResult, run_search
from tts_cli.render import short_rule


def fake_result(answer, flops, candidate_answers=(), scores=None):
    """A finished search: its answer, FLOPs, and candidates with these answers (and, when given,
    one step score each, as a Best-of-N pool records them)."""
    scores = scores if scores is not None else [None] * len(candidate_answers)
    candidates = [Candidate(node_id=i, steps=["step"], step_scores=[] if s is None else [s], score=s, answer=a,
                            answer_method="boxed", finish_reason="eos", tokens=10)
                  for i, (a, s) in enumerate(zip(candidate_answers, scores))]
    return SearchResult(problem="p", strategy="x", config={}, answer=answer, candidates=candidates, tree=[],
                        votes={}, compute={"flops": flops, "seconds": 0.0, "policy": {}})


def scripted_problems(easy: int, hard: int) -> list[Problem]:
    kinds = ["easy"] * easy + ["hard"] * hard
    return [Problem(id=f"{k}{i}", problem=f"{k} {i}", answer="1", line=i + 1) for i, k in enumerate(kinds)]


class Script:
    """A solve_many for calibrate: pools (Best-of-N at N_max) whose paths are right on easy
    problems (3 of 4, the wrong one first) and wrong on hard ones; CoT always wrong; beam and
    DVTS right where `right(setting, kind, index)` says. Records every (run setting, problem)."""

    def __init__(self, right=lambda setting, kind, index: False, pool=None):
        self.right, self.solved = right, []
        self.pool = pool or (lambda setting, kind: ["2", "1", "1", "1"] * (setting.n // 4) if kind == "easy"
                             else ["2"] * setting.n)

    def __call__(self, pairs):
        for setting, problem in pairs:
            self.solved.append((setting, problem.id))
            kind, index = problem.problem.split()
            if setting.role == "pool":
                answers = self.pool(setting, kind)
                yield (setting, problem), fake_result(answers[0], 4.0 * setting.n, answers,
                                                      [0.9 if a == "1" else 0.2 for a in answers])
            elif setting.strategy == "cot":
                yield (setting, problem), fake_result("2", 1.0, ["2"])
            else:
                ok = self.right(setting, kind, int(index))
                result = fake_result("1" if ok else "2", 3.0 * setting.n, ["1" if ok else "2"] * self.paths(setting))
                for i, c in enumerate(result.candidates):
                    c.branch = i if setting.strategy == "dvts" else None  # one path per DVTS subtree
                result.config = {"aggregation": setting.aggregation}
                yield (setting, problem), result

    @staticmethod
    def paths(setting) -> int:
        return setting.n // setting.beam_width if setting.strategy == "dvts" else 1


CLASSIC = ("cot", "majority", "best-of-n", "beam", "dvts")  # the grid before the early-stopping strategies


def small_grid(temperatures=(None,), strategies=CLASSIC):
    return lambda b: candidate_settings(b, has_verifier=True, beam_widths=(2,), aggregations=("last",),
                                        temperatures=temperatures, strategies=strategies)


def test_calibrate_samples_one_pool_per_temperature_and_estimates_every_budget(tmp_path):
    problems = scripted_problems(6, 6)
    script = Script()
    profile = calibrate(problems, [2, 4], tmp_path / "runs", solve_many=script, has_verifier=True,
                        policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid((0.3, 0.7)),
                        base_temperature=0.7, holdout=0)
    ran = {s for s, _ in script.solved}
    pools = {s for s in ran if s.role == "pool"}
    # one pool per temperature, at the largest budget, Best-of-N (every step scored)
    assert {(s.strategy, s.n, s.temperature) for s in pools} == {("best-of-n", 4, 0.3), ("best-of-n", 4, 0.7)}
    # no majority or Best-of-N run of its own, and no difficulty run: the pools give both
    assert not any(s.strategy in ("majority", "best-of-n") and s.role is None for s in ran)
    assert not (tmp_path / "runs" / "difficulty.jsonl").exists()
    # beam search runs per setting, DVTS at its largest budget (its subtrees give the smaller), CoT once
    own = {s.key for s in ran if s.role is None}
    assert own == {"cot_n1"} | {f"beam_n{n}_m2_vote_last_t{t}" for n in (2, 4) for t in ("0.3", "0.7")} | {
        f"dvts_n4_m2_vote_last_t{t}" for t in ("0.3", "0.7")}
    assert len(script.solved) == len(set(script.solved)) == len(problems) * len(ran)
    # every budget estimated from the pool at its temperature; FLOPs n / N_max of the pool's
    estimated = {(e["budget"], e["setting"]): e for e in profile.estimates if e["estimated"]}
    assert set(estimated) == {(n, f"{k}_n{n}{extra}_t{t}") for n in (2, 4) for t in ("0.3", "0.7")
                              for k, extra in [("majority", ""), ("best-of-n", "_vote_last"), ("best-of-n", "_max_last")]
                              } | {(2, f"dvts_n2_m2_vote_last_t{t}") for t in ("0.3", "0.7")}
    maj2 = estimated[(2, "majority_n2_t0.7")]
    # majority of 2 of [2, 1, 1, 1]: the 3 pairs with the wrong first path tie and pick it: 3 of 6 right
    assert maj2["accuracy"] == pytest.approx(0.5 * 0.5)  # half the problems easy
    assert maj2["run"] == "pool_n4_t0.7" and maj2["flops"] == pytest.approx(16.0 * 2 / 4)
    assert estimated[(4, "majority_n4_t0.7")]["accuracy"] == pytest.approx(0.5)
    assert estimated[(2, "best-of-n_n2_max_last_t0.3")]["accuracy"] == pytest.approx(0.5)  # the right path scores higher
    # difficulty from the reference pool (T=0.7): 3 of 4 right is easy, 0 of 4 hard
    assert profile.meta["problems_per_bin"] == {"easy": 6, "medium": 0, "hard": 6}

    def nothing_left(pairs):  # resumable: a second calibration reads every run back
        for pair in pairs:
            raise AssertionError(f"solved again: {pair}")
        yield from ()
    again = calibrate(problems, [2, 4], tmp_path / "runs", solve_many=nothing_left, has_verifier=True,
                      policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid((0.3, 0.7)),
                      base_temperature=0.7, holdout=0)
    assert [c.setting for c in again.choices] == [c.setting for c in profile.choices]
    assert again.estimates == profile.estimates


def test_per_setting_calibration_runs_every_setting_and_a_difficulty_run(tmp_path):
    script = Script()
    profile = calibrate(scripted_problems(3, 3), [2, 4], tmp_path / "runs", solve_many=script, has_verifier=True,
                        policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid(), per_setting=True,
                        samples=4, holdout=0)
    ran = {s for s, _ in script.solved}
    assert {s.key for s in ran if s.role is None} >= {"majority_n2", "majority_n4", "best-of-n_n4_max_last"}
    assert {(s.role, s.n) for s in ran if s.role} == {("difficulty", 4)}
    assert not any(e["estimated"] for e in profile.estimates) and profile.meta["mode"] == "per-setting"


def test_a_setting_one_problem_better_stays_default_and_a_clear_win_switches(tmp_path):
    # hard problems: every pool path and CoT wrong. Beam search (M=2) is right on every hard
    # problem at N=4 (a clear win), on one of them at N=2 (noise); DVTS never.
    def beam_right(setting, kind, index):
        return setting.strategy == "beam" and kind == "hard" and (setting.n == 4 or index == 12)
    profile = calibrate(scripted_problems(12, 12), [2, 4], tmp_path / "runs", solve_many=Script(beam_right),
                        has_verifier=True, policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid(),
                        holdout=0, min_problems=10)
    chosen = {(c.bin, c.budget): c for c in profile.choices}
    clear = chosen[("hard", 4)]
    assert clear.setting == "beam_n4_m2_vote_last" and clear.rule.startswith("beats default by 1.000")
    assert clear.default == "cot_n1" and clear.difference["lo"] > 0  # CoT, as good as majority (both 0), is the default
    noise = chosen[("hard", 2)]
    assert noise.setting == "cot_n1" and noise.rule == "default"
    # what a win would have needed on these 12 problems: at least the one problem in 12 it gained
    assert 0.083 <= noise.margin < 1 and short_rule(noise.rule, noise.margin).startswith("default (a win needed +")
    assert noise.strategy == "cot" and profile.lookup("hard", 2).settings() == {"strategy": "cot", "n": 2}
    easy = chosen[("easy", 4)]
    assert easy.setting == "majority_n4" and easy.rule == "default" and easy.interval == [1.0, 1.0]
    # no medium problem: decided with the larger neighbour (easy on a tie)
    assert chosen[("medium", 4)].rule == "bin too small: merged with easy"
    assert chosen[("medium", 4)].setting == "majority_n4"


def test_small_bins_fall_back_to_the_all_problem_choice(tmp_path):
    def beam_right(setting, kind, index):
        return setting.strategy == "beam" and kind == "hard" and setting.n == 4
    profile = calibrate(scripted_problems(12, 12), [4], tmp_path / "runs", solve_many=Script(beam_right),
                        has_verifier=True, policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid(),
                        holdout=0, min_problems=20)
    # no bin has 20 problems, nor does any bin with its neighbour: every bin is chosen on all 24;
    # beam (right on half) against majority (right on the other half): no clear win either way
    for c in profile.choices:
        assert c.rule == "bin too small: all-problem choice" and c.problems == 24
        assert c.setting in ("majority_n4", "cot_n1")
    assert profile.lookup("hard", 4).strategy != "beam"


def test_calibrate_chooses_the_temperature_under_the_noise_rule_and_auto_samples_at_it(tmp_path):
    problems = [Problem(id=f"p{i}", problem=f"easy {i}", answer="1", line=i + 1) for i in range(24)]
    # majority is right at T=0.3 (every path) and wrong at T=0.7, the run's own temperature
    script = Script(pool=lambda setting, kind: ["1" if setting.temperature == 0.3 else "2"] * setting.n)
    plan = lambda b: candidate_settings(b, has_verifier=False, temperatures=(0.3, 0.7), strategies=CLASSIC)  # noqa: E731
    assert {s.key for s in plan(4)} == {"cot_n4", "majority_n4_t0.3", "majority_n4_t0.7"}
    profile = calibrate(problems, [4], tmp_path / "runs", solve_many=script, has_verifier=False,
                        policy={"file": "fake.gguf"}, prm=None, settings_for=plan, base_temperature=0.7, holdout=0)
    assert {s.strategy for s, _ in script.solved if s.role == "pool"} == {"majority"}  # no verifier: votes only
    choice = profile.lookup("hard", 4)  # every problem is hard at the reference temperature
    assert choice.settings() == {"strategy": "majority", "n": 4, "temperature": 0.3}
    assert choice.rule.startswith("beats default") and choice.default == "cot_n1"
    assert choice.pass_at_n == 1.0
    assert all("pass_at_n" in p for p in profile.frontier)
    profile.save(tmp_path / "profile.yaml")
    engine = FakeEngine(hard_script)
    engine.model.path = "fake.gguf"
    result = run_search("auto", "p", engine, None, SearchConfig(n=8, probe=2, temperature=0.9,
                                                                 profile=str(tmp_path / "profile.yaml")))
    assert result.auto["chosen"] == "majority" and result.auto["settings"]["temperature"] == 0.3
    # one bin only: no difficulty model, the probe's agreement bins it, sampled at the run's T
    assert result.auto["difficulty_from"] == "answer agreement"
    temps = [s.sampling.temperature for s in engine.started]
    assert temps.count(0.9) == 2 and temps.count(0.3) == 6  # the probe at the run's T, the rest at the profile's


def test_calibrate_estimates_early_stopping_from_the_pools_and_auto_runs_it(tmp_path):
    # easy pools [2, 1, 1, 1, 2, 1, 1, 1] (majority right), hard ones all "2" (wrong): two agreeing
    # paths give P(leader) = 0.875, so at threshold 0.7 adaptive majority stops early everywhere
    problems = scripted_problems(12, 12)
    script = Script()
    grid = small_grid(strategies=("cot", "majority", "majority-adaptive", "best-of-n-adaptive", "particle-filter"))
    keys = {s.key for s in grid(8)}
    assert {"majority-adaptive_n8_s0.7", "majority-adaptive_n8_s0.95", "best-of-n-adaptive_n8_vote_last_s0.7",
            "particle-filter_n8_vote_last"} <= keys and not any(k.startswith("beam") for k in keys)
    profile = calibrate(problems, [8], tmp_path / "runs", solve_many=script, has_verifier=True,
                        policy={"file": "fake.gguf"}, prm="scripted", settings_for=grid, holdout=0)
    ran = {s for s, _ in script.solved}
    # the early-stopping settings come from the pool; particle filtering runs on its own
    assert {s.key for s in ran if s.role is None} == {"cot_n1", "particle-filter_n8_vote_last"}
    estimated = {e["setting"]: e for e in profile.estimates if e["estimated"]}
    majority, early = estimated["majority_n8"], estimated["majority-adaptive_n8_s0.7"]
    assert early["flops"] < 0.6 * majority["flops"]  # hard problems stop after their first wave of 2
    assert early["accuracy"] <= majority["accuracy"] == pytest.approx(0.5)
    assert estimated["majority-adaptive_n8_s0.95"]["flops"] > early["flops"]

    with pytest.raises(ValueError, match="unknown strategy 'auto'"):
        candidate_settings(4, has_verifier=True, strategies=("auto",))

    # a profile that chose adaptive majority: auto's second stage runs it at that threshold
    path = tmp_path / "profile.yaml"
    Profile(policy={"name": "fake", "file": "fake.gguf"}, prm=None, bins=Bins(),
            choices=[Choice(bin=b, budget=8, strategy="majority-adaptive", stop_threshold=0.7, accuracy=0.5,
                            flops=8.0, problems=3) for b in ("easy", "medium", "hard")]).save(path)
    assert Profile.load(path).lookup("hard", 8).settings()["stop_threshold"] == 0.7
    engine = FakeEngine(hard_script)
    engine.model.path = "fake.gguf"
    result = run_search("auto", "p", engine, None, SearchConfig(n=16, probe=4, profile=str(path)))
    assert result.auto["chosen"] == "majority-adaptive"
    assert result.config["chosen"]["stop_threshold"] == 0.7


def test_candidate_settings_cover_the_hyper_parameters():
    keys = {s.key for s in candidate_settings(8, has_verifier=True)}
    assert {"majority_n8", "best-of-n_n8_vote_last", "best-of-n_n8_max_min", "beam_n8_m2_vote_last",
            "beam_n8_m4_vote_min", "dvts_n8_m4_vote_last"} <= keys
    assert {s.key for s in candidate_settings(8, has_verifier=False)} == {
        "cot_n8", "majority_n8", "majority-adaptive_n8_s0.7", "majority-adaptive_n8_s0.95"}
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


def test_headroom_is_the_share_of_the_oracle_gain_over_cot_captured():
    from tts_cli.compare import headroom_captured
    rows = [{"strategy": "cot", "n": 1, "accuracy": 0.2, "pass_at_n": 0.2},
            {"strategy": "best-of-n", "n": 16, "accuracy": 0.35, "pass_at_n": 0.5},
            {"strategy": "majority", "n": 16, "accuracy": 0.15, "pass_at_n": 0.5},
            {"strategy": "beam", "n": 4, "accuracy": 0.2, "pass_at_n": 0.2}]
    headroom_captured(rows)
    assert [r["headroom"] for r in rows] == [None, 0.5, round(-0.05 / 0.3, 4), None]


def test_heldout_check_is_stored_in_the_profile_and_printed(tmp_path, monkeypatch):
    from cli_helpers import tts
    from tts_cli.pools import heldout_ids
    from tts_cli.profile import saved_profile_path
    problems = scripted_problems(20, 20)
    profile = calibrate(problems, [2, 4], tmp_path / "runs", solve_many=Script(), has_verifier=True,
                        policy={"file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, prm="scripted", settings_for=small_grid())
    held = heldout_ids([p.id for p in problems], 0.3)
    check = profile.heldout
    assert check["problems"] == len(held) and profile.meta["calibration_problems"] == len(problems) - len(held)
    assert [row["budget"] for row in check["budgets"]] == [2, 4]
    for row in check["budgets"]:
        for part in ("profile", "best_fixed", "majority"):
            assert {"mean", "lo", "hi"} <= set(row[part]["realized"])
        assert row["profile"]["predicted"]["lo"] <= row["profile"]["predicted"]["mean"] <= row["profile"]["predicted"]["hi"]
        assert row["agrees"] and row["difficulty_from"] in ("difficulty model", "answer agreement")
    # at N=2 majority loses the tied pairs that Best-of-N's scores win: a clear win, realized too
    n2 = check["budgets"][0]
    assert set(n2["profile"]["settings"].values()) <= {"best-of-n_n2_vote_last", "best-of-n_n2_max_last"}
    assert n2["profile"]["realized"]["mean"] > n2["majority"]["realized"]["mean"]
    path = tmp_path / "p.yaml"
    profile.save(path)
    assert Profile.load(path).heldout == check
    shown = tts("calibrate", "--show", path)
    assert shown.exit_code == 0, shown.output
    assert f"held-out check: {len(held)} problems" in shown.output and "N=4: profile predicted" in shown.output
    assert "default" in shown.output
    saved = saved_profile_path("SmolLM2-135M-Instruct.Q4_1.gguf", "scripted")
    saved.parent.mkdir(parents=True)
    profile.save(saved)
    info = tts("models", "info", "smollm2-135m-instruct")
    assert info.exit_code == 0, info.output
    assert f"profile {saved}" in info.output and "N=2: profile predicted" in info.output


def test_a_version_1_profile_loads_and_says_it_has_no_heldout_check(tmp_path):
    from cli_helpers import tts
    path = tmp_path / "v1.yaml"
    path.write_text("tts_profile: 1\nchoices:\n  - {bin: easy, budget: 4, strategy: majority, accuracy: 0.5, "
                    "flops: 1.0, problems: 3}\n")
    assert Profile.load(path).heldout == {}
    shown = tts("calibrate", "--show", path)
    assert shown.exit_code == 0 and "held-out check: none" in shown.output
    path.write_text("tts_profile: 7\nchoices: []\n")
    with pytest.raises(ProfileError, match="profile version 7"):
        Profile.load(path)


def test_difficulty_model_is_fitted_per_probe_size_and_auto_uses_it(tmp_path):
    pytest.importorskip("sklearn")
    problems = scripted_problems(12, 12)
    profile = calibrate(problems, [4, 8], tmp_path / "runs", solve_many=Script(), has_verifier=True,
                        policy={"file": "fake.gguf"}, prm="scripted", settings_for=small_grid((0.3,)),
                        base_temperature=0.7, base_aggregation="min", holdout=0)
    assert [m["probe_paths"] for m in profile.difficulty_models] == [2]  # auto's probe at N=4 and N=8
    entry = profile.difficulty_models[0]
    assert entry["probe_settings"] == {"aggregation": "min", "temperature": 0.3}  # the reference pool's
    assert set(entry["model"]["features"]) >= {"agreement", "mean_score"} and entry["model"]["cv_accuracy"] == 1.0
    # a model that calls every probe hard, whatever it agrees on: auto follows the model
    profile.difficulty_models = [{**entry, "model": {**entry["model"], "classes": ["easy", "hard"],
                                                     "coef": [[0.0] * len(entry["model"]["features"])] * 2,
                                                     "intercept": [0.0, 1.0]}}]
    profile.choices = [Choice(bin="easy", budget=8, strategy="majority", accuracy=1.0, flops=8.0, problems=3),
                       Choice(bin="hard", budget=8, strategy="beam", accuracy=0.5, flops=30.0, problems=3,
                              beam_width=2, selection="vote", aggregation="last")]
    profile.save(tmp_path / "p.yaml")
    engine = FakeEngine(easy_script)  # every probe path agrees: agreement alone would say easy
    engine.model.path = "fake.gguf"
    result = run_search("auto", "p", engine, ScoreInTextVerifier(),
                        SearchConfig(n=8, temperature=0.9, profile=str(tmp_path / "p.yaml")))
    assert result.auto["difficulty"] == "hard" and result.auto["difficulty_from"] == "difficulty model"
    assert result.auto["chosen"] == "beam" and result.auto["probe_paths"] == 2
    assert [s.sampling.temperature for s in engine.started[:2]] == [0.3, 0.3]  # the probe at the model's T
    # a probe size the profile has no model for: agreement, as before
    other = run_search("auto", "p", FakeEngine(easy_script), ScoreInTextVerifier(),
                       SearchConfig(n=8, probe=3, profile=str(tmp_path / "p.yaml")))
    assert other.auto["difficulty"] == "easy" and other.auto["difficulty_from"] == "answer agreement"


def test_compare_estimates_the_majority_and_best_of_n_curves_from_one_run(tmp_path):
    from tts_cli.compare import plan_runs, write_summary
    from tts_cli.grade import GradeSummary, record_for
    from tts_cli.settings import build_run
    base = build_run(None, {"prm": "confidence"}, strategy="majority")
    runs, pooled = plan_runs(["cot", "majority", "best-of-n", "beam"], [2, 8], tmp_path, base)
    assert list(runs) == ["cot N=1", "pool N=8", "beam N=8"]  # beam N=2 is not a multiple of M=4
    assert pooled == {"pool N=8": ["majority", "best-of-n"]}
    assert (runs["pool N=8"].settings.strategy, runs["pool N=8"].settings.search.n) == ("best-of-n", 8)
    problems = scripted_problems(2, 2)
    answers = {"easy": ["2", "1", "1", "1"] * 2, "hard": ["2"] * 8}
    records = {key: [record_for(p, fake_result("1", 80.0, answers[p.problem.split()[0]],
                                               [0.9 if a == "1" else 0.2 for a in answers[p.problem.split()[0]]]))
                     for p in problems] for key in runs}
    rows, _ = write_summary(tmp_path / "d.jsonl", runs, {k: GradeSummary(records=r) for k, r in records.items()},
                            tmp_path, pooled, [2, 8])
    curve = {(r["strategy"], r["n"]): r for r in rows if r.get("estimated_from")}
    assert set(curve) == {(s, n) for s in ("majority", "best-of-n") for n in (1, 2, 4, 8)}
    assert curve[("majority", 8)]["accuracy"] == 0.5 and curve[("best-of-n", 1)]["accuracy"] == pytest.approx(0.75 / 2)
    assert curve[("majority", 2)]["flops_per_problem"] == pytest.approx(80.0 * 2 / 8)
    assert curve[("best-of-n", 4)]["pass_at_n"] == 0.5
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "N / N_max" in summary["estimated"]
    assert (tmp_path / "accuracy_vs_flops.png").stat().st_size > 0
