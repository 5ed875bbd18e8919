"""Particle filtering, adaptive consistency and DeepConf, pinned on the scripted fake engine."""

import itertools
import string

import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.search import STRATEGIES, Job, Scheduler, SearchConfig, run_search
from tts_cli.search.adaptive import prob_leader_is_mode


def nth_path(make_step):
    """A script over whole paths in the order they are started: path i (a letter) is named by
    its first step, and make_step(i, depth) gives its step at each depth (1 is the first)."""
    count = itertools.count()

    def script(steps, branch):
        if not steps:
            i = next(count)  # more paths than scripted: IndexError, the test fails
            return make_step(i, 1, f"begin {string.ascii_lowercase[i]} ")
        i = string.ascii_lowercase.index(steps[0].split()[1])
        return make_step(i, len(steps) + 1, "")
    return script


def one_step_answers(answers, scores=None):
    """Path i answers answers[i] in one step, scored scores[i] (0.5 if not given)."""
    return nth_path(lambda i, depth, name: (f"{name}The answer is \\boxed{{{answers[i]}}} |{(scores or [0.5] * 99)[i]}",
                                            "eos"))


# --- particle filtering ------------------------------------------------------------------

def lineage_script(first_scores, finish_depth=3, answers=None):
    """Branch b's first step is scored first_scores[b]; its descendants keep its name, score 0.5
    and answer answers[b] (default: b) at finish_depth."""
    def script(steps, branch):
        if not steps:
            return f"line{branch} |{first_scores[branch]}\n\n", "stop"
        line = int(steps[0][4:steps[0].index(" ")])
        if len(steps) + 1 >= finish_depth:
            return f"so \\boxed{{{(answers or range(99))[line]}}} |0.5", "eos"
        return f"more {len(steps)}.{branch} |0.5\n\n", "stop"
    return script


def test_particle_filter_resamples_toward_high_scoring_particles():
    # one good start (0.95) among three poor ones (0.05), all scored alike afterwards: a vote
    # over independent paths says 5, resampling replaces the poor particles with forks of the good
    engine, verifier = FakeEngine(lineage_script([0.95, 0.05, 0.05, 0.05], answers=[7, 5, 5, 5])), ScoreInTextVerifier()
    result = run_search("particle-filter", "p", engine, verifier, SearchConfig(n=4))
    first = [x for x in result.tree if x.depth == 1]
    good = next(x for x in first if x.score == 0.95)
    assert all(x.state == "pruned" for x in first if x is not good)
    assert all(result.tree[x.parent] is good for x in result.tree if x.depth == 2)
    assert result.answer == "7" and len(result.candidates) == 4
    bon = run_search("best-of-n", "p", FakeEngine(lineage_script([0.95, 0.05, 0.05, 0.05], answers=[7, 5, 5, 5])),
                     ScoreInTextVerifier(), SearchConfig(n=4))
    assert bon.answer == "5"
    assert not engine.live and not verifier.open


def uneven_script(steps, branch):
    """Scores by branch, so resampling has real choices; paths finish at depths 2 to 5."""
    score = [0.8, 0.6, 0.4, 0.2, 0.7, 0.5][branch]
    depth = len(steps) + 1
    if depth >= 2 + (len(steps[0]) if steps else 0) % 4:
        return f"\\boxed{{{branch}}} |{score}", "eos"
    return f"step {depth}.{branch}{'x' * branch} |{score}\n\n", "stop"


def tree_shape(result):
    return [(x.parent, x.step, x.state) for x in result.tree]


def test_particle_filter_holds_at_most_n_sequences_and_is_reproducible_by_seed():
    shapes = []
    for seed in [0, 0, 1, 2, 3, 4, 5]:
        engine = FakeEngine(uneven_script)
        result = run_search("particle-filter", "p", engine, ScoreInTextVerifier(), SearchConfig(n=6, seed=seed))
        assert engine.peak_live <= 6 and not engine.live
        assert len(result.candidates) == 6  # every particle ends as a candidate
        shapes.append(tree_shape(result))
    assert shapes[0] == shapes[1]  # the same seed: the same search
    assert len({repr(s) for s in shapes}) > 2  # other seeds resample differently


def test_particle_filter_stops_at_the_step_limit():
    engine = FakeEngine(lambda steps, branch: (f"more |0.{branch + 1}\n\n", "stop"))
    result = run_search("particle-filter", "p", engine, ScoreInTextVerifier(), SearchConfig(n=3, max_steps=4))
    assert [c.finish_reason for c in result.candidates] == ["max_steps"] * 3
    assert not engine.live


# --- adaptive consistency ----------------------------------------------------------------

def test_the_beta_stopping_rule():
    assert prob_leader_is_mode(4, 0) == pytest.approx(1 - 0.5 ** 5, abs=1e-4)  # 4 of 4 agree: 0.97
    assert prob_leader_is_mode(3, 1) == pytest.approx(26 / 32, abs=1e-4)  # P(Binomial(5, 1/2) < 4)
    assert prob_leader_is_mode(2, 2) == pytest.approx(0.5, abs=1e-4)


def test_majority_adaptive_stops_when_the_first_wave_agrees_and_says_what_it_saved():
    engine = FakeEngine(one_step_answers(["7"] * 16))
    result = run_search("majority-adaptive", "p", engine, None, SearchConfig(n=16))  # waves of 4
    assert result.answer == "7" and len(result.candidates) == 4
    path_tokens = len(result.candidates[0].text) // 4
    assert result.saved == {"paths_not_sampled": 12, "paths_stopped_early": 0,
                            "tokens_saved_estimate": 12 * path_tokens}
    assert result.as_dict()["saved"] == result.saved
    assert any("stopped after 4 of 16" in note for note in result.notes)
    assert not engine.live


def test_majority_adaptive_samples_the_whole_budget_when_votes_split():
    engine = FakeEngine(one_step_answers(["1", "2"] * 4))  # a ninth path would raise
    result = run_search("majority-adaptive", "p", engine, None, SearchConfig(n=8))
    assert len(result.candidates) == 8 and result.saved["paths_not_sampled"] == 0
    assert not engine.live


def test_adaptive_stops_when_the_paths_left_cannot_overtake_the_leader():
    # 4 to 1 with one path left: 5 cannot win, though 4:1 alone would not pass the Beta test
    engine = FakeEngine(one_step_answers(["7", "5", "7", "7", "7", "5"]))
    result = run_search("majority-adaptive", "p", engine, None, SearchConfig(n=6, wave=5))
    assert result.answer == "7" and len(result.candidates) == 5
    assert any("cannot be overtaken" in note for note in result.notes)


def test_best_of_n_adaptive_weighs_the_votes_by_verifier_scores():
    sure = run_search("best-of-n-adaptive", "p", FakeEngine(one_step_answers(["7"] * 8, [0.95] * 8)),
                      ScoreInTextVerifier(), SearchConfig(n=8, wave=4))
    unsure = run_search("best-of-n-adaptive", "p", FakeEngine(one_step_answers(["7"] * 8, [0.3] * 8)),
                        ScoreInTextVerifier(), SearchConfig(n=8, wave=4))
    assert len(sure.candidates) == 4 and sure.saved["paths_not_sampled"] == 4
    assert len(unsure.candidates) == 8  # four agreeing paths the verifier doubts are not enough


@pytest.mark.parametrize("selection,answer", [("vote", "5"), ("max", "7")])
def test_best_of_n_adaptive_answers_by_prm_vote_or_prm_max(selection, answer):
    script = one_step_answers(["7", "5", "5", "9"], [0.9, 0.6, 0.6, 0.1])
    result = run_search("best-of-n-adaptive", "p", FakeEngine(script), ScoreInTextVerifier(),
                        SearchConfig(n=4, wave=2, selection=selection))
    assert result.answer == answer


# --- deepconf ----------------------------------------------------------------------------

def test_deepconf_stops_an_unsure_path_early_and_leaves_unsure_paths_out_of_the_vote():
    def make_step(i, depth, name):
        if i < 3:  # warm-up: confident paths (threshold between e^-0.3 and e^-0.2), answer 7
            return ((f"{name}first step\n\n", "stop", -0.1 * (i + 1)) if depth < 3
                    else ("so the answer is \\boxed{7}", "eos", -0.1 * (i + 1)))
        if i == 3:  # confident first step, then it loses its way: stopped before it answers
            return (f"{name}first step\n\n", "stop", -0.1) if depth == 1 else ("I wonder, perhaps\n\n", "stop", -3.0)
        return f"{name}The answer is \\boxed{{5}}", "eos", -2.0  # unsure guesses: the plain majority
    engine = FakeEngine(nth_path(make_step))
    result = run_search("deepconf", "p", engine, None, SearchConfig(n=8, warmup=3, confidence_window=4))
    stopped = [x for x in result.tree if x.state == "pruned"]
    assert len(stopped) == 1 and stopped[0].depth == 2 and "confidence" in stopped[0].reason
    assert sorted(c.answer for c in result.candidates) == ["5"] * 4 + ["7"] * 3  # 5 has the most paths...
    assert result.answer == "7" and "5" not in result.votes  # ...but too little confidence to vote
    assert result.saved["paths_stopped_early"] == 1 and result.saved["tokens_saved_estimate"] > 0
    assert not engine.live


def test_deepconf_falls_back_to_majority_when_no_confident_path_answered():
    def make_step(i, depth, name):
        if i == 0:
            return f"{name}I am not sure.", "eos", -0.1  # the most confident path gives no answer
        return f"{name}The answer is \\boxed{{3}}", "eos", -0.5
    result = run_search("deepconf", "p", FakeEngine(nth_path(make_step)), None,
                        SearchConfig(n=4, warmup=2, confidence_percentile=100))
    assert result.answer == "3"
    assert any("plain majority" in note for note in result.notes)


# --- many searches at once ---------------------------------------------------------------

def per_problem(steps, branch, prompt):
    """Problem "k": two steps, then the answer k (confidently, and well scored)."""
    k = prompt.rsplit("problem ", 1)[1].split()[0]
    if len(steps) >= 1:
        return f"\\boxed{{{k}}} |0.9", "eos"
    return f"work on {k}, branch {branch} |0.{branch + 1}\n\n", "stop"


def test_the_new_strategies_run_side_by_side_in_the_scheduler_and_release_everything(monkeypatch):
    names = ["particle-filter", "majority-adaptive", "best-of-n-adaptive", "deepconf"]
    reserved_at_end: list[int] = []  # the slots each search still held when it returned

    def recording(strategy):
        def run(search, config):
            result = yield from strategy(search, config)
            reserved_at_end.append(search.reserved)
            return result
        return run
    for name in names:
        monkeypatch.setitem(STRATEGIES, name, recording(STRATEGIES[name]))
    engine, verifier = FakeEngine(per_problem, n_seq_max=16), ScoreInTextVerifier()
    jobs = [Job(f"problem {k} ?", name, SearchConfig(n=8), tag=(name, k)) for k in range(3) for name in names]
    scheduler = Scheduler(engine, verifier, max_searches=4)
    results = {job.tag: r for job, r in scheduler.run(jobs)}
    for (name, k), r in results.items():
        assert not isinstance(r, Exception), r
        assert r.answer == str(k), name
    assert scheduler.peak_searches > 1 and engine.peak_live <= 16
    assert reserved_at_end == [0] * len(jobs)  # each search gave back every slot it reserved
    assert not engine.live and not verifier.open
