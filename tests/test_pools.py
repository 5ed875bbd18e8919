"""tts_cli.pools and tts_cli.difficulty_model: estimates against brute force and the live
search, intervals, the choice rule, the held-out split and the difficulty model. No model runs."""

import itertools
import json
import random
import sys
import zlib

import numpy as np
import pytest
import yaml

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.difficulty_model import FEATURES, fit_difficulty_model, predict_bin, probe_features
from tts_cli.answers import answers_match
from tts_cli.pools import (NO_ANSWER, Pool, PoolError, bootstrap_interval, choose_profile, choose_setting,
                           decision_bins, evaluate_profile_on_heldout, expected_accuracy, heldout_ids,
                           paired_difference, pools_from_records, record_accuracies,
                           simultaneous_differences)
from tts_cli.search import SearchConfig, run_search
from tts_cli.search.common import aggregate, choose_answer, group_answers
from tts_cli.search.types import Candidate

# Two small pools (N_max = 6) built for ties: equal counts, equal score sums, equal best scores,
# an unanswered path, a path with no scores, and equivalent spellings of one answer.
POOL_A = dict(reference="2", answers=["1", "2", "1", "2", None, "3"],
              steps=[[0.5, 0.5], [0.25, 0.5], [0.5, 0.25], [0.5], [0.75], [0.5, 0.75]])
POOL_B = dict(reference="1/2", answers=["0.5", "7", "\\frac{1}{2}", None, "7", "8"],
              steps=[[0.25], [0.5, 0.5], [0.75, 0.25], [0.5], [], [0.5, 0.25]])


def candidates(spec, aggregation="last"):
    return [Candidate(node_id=i + 1, steps=["step\n\n"] * max(1, len(s)), step_scores=list(s),
                      score=aggregate(list(s), aggregation), answer=a, answer_method="boxed" if a else None,
                      finish_reason="eos")
            for i, (a, s) in enumerate(zip(spec["answers"], spec["steps"]))]


def live_right(cands, reference, select):
    """What the live search would be graded: choose_answer on these candidates, in this order."""
    answer = choose_answer(cands, group_answers(cands), select)
    return answers_match(answer, reference)


def brute_force(spec, method, n, aggregation, ties):
    """The mean over every n-subset (in recorded order; for ties="expected" also over every order
    of the subset) of the live rule's correctness."""
    cands = candidates(spec, aggregation or "last")
    values = []
    for subset in itertools.combinations(cands, n):
        if method == "pass":
            values.append(any(answers_match(c.answer, spec["reference"]) for c in subset))
        elif ties == "first":
            values.append(live_right(list(subset), spec["reference"], method))
        else:
            orders = list(itertools.permutations(subset))
            values.append(sum(live_right(list(o), spec["reference"], method) for o in orders) / len(orders))
    return float(np.mean(values))


@pytest.fixture(scope="module")
def small_pools():
    return {name: Pool.from_candidates(candidates(spec), spec["reference"], id=name, aggregation="last")
            for name, spec in (("A", POOL_A), ("B", POOL_B))}


def test_pool_groups_answers_once_like_group_answers(small_pools):
    b = small_pools["B"]
    assert b.group_answers == ("0.5", "7", "8")  # \frac{1}{2} joined 0.5's group
    assert b.groups.tolist() == [0, 1, 0, NO_ANSWER, 1, 2]
    assert b.group_correct.tolist() == [True, False, False]
    assert b.candidate_correct.tolist() == [True, False, True, False, False, False]
    assert list(group_answers(candidates(POOL_B))) == list(b.group_answers)
    # path score as Run.path_score: aggregate, 0.0 when nothing was scored
    assert b.path_scores("min").tolist() == [0.25, 0.5, 0.25, 0.5, 0.0, 0.25]
    assert b.path_scores("prod").tolist() == [0.25, 0.25, 0.1875, 0.5, 0.0, 0.125]


@pytest.mark.parametrize("name,spec", [("A", POOL_A), ("B", POOL_B)])
@pytest.mark.parametrize("method,aggregation", [("majority", None), ("pass", None), ("vote", "last"), ("vote", "min"),
                                                ("max", "last"), ("max", "min")])
def test_expected_accuracy_equals_brute_force_over_all_subsets(small_pools, name, spec, method, aggregation):
    for ties in ("first", "expected"):
        for n in range(1, 7):
            got = expected_accuracy([small_pools[name]], method, n, aggregation=aggregation, ties=ties)
            assert got.exact.all() and got.monte_carlo_se == 0.0
            want = brute_force(spec, method, n, aggregation, ties)
            assert got.mean == pytest.approx(want, abs=1e-12), (method, ties, n)


def test_pass_at_n_closed_form():
    # 3 right of 10: 1 - C(7, n) / C(10, n), against enumeration
    pool = Pool.from_candidates([{"answer": a} for a in ["5"] * 3 + ["4"] * 7], "5")
    for n in range(1, 11):
        subsets = list(itertools.combinations(range(10), n))
        want = sum(any(i < 3 for i in s) for s in subsets) / len(subsets)
        assert expected_accuracy([pool], "pass", n).mean == pytest.approx(want, abs=1e-12)


def test_monte_carlo_is_close_to_exact():
    rng = random.Random(3)
    pools = []
    for k in range(6):  # 14 paths each: C(14, 6) = 3003 subsets, enumerated or sampled
        cands = [{"answer": str(rng.choice([1, 1, 2, 3, None])), "step_scores": [rng.random(), rng.random()]}
                 for _ in range(14)]
        for c in cands:
            c["answer"] = None if c["answer"] == "None" else c["answer"]
        pools.append(Pool.from_candidates(cands, "1", id=k, aggregation="min"))
    for method in ("majority", "vote", "max"):
        exact = expected_accuracy(pools, method, 6)
        sampled = expected_accuracy(pools, method, 6, exact_limit=0, resamples=4000, seed=1)
        assert exact.exact.all() and not sampled.exact.any()
        assert 0 < sampled.monte_carlo_se < 0.5 / np.sqrt(4000 * len(pools)) + 1e-12
        assert abs(sampled.mean - exact.mean) < 4 * sampled.monte_carlo_se + 1e-3, method
        again = expected_accuracy(pools, method, 6, exact_limit=0, resamples=4000, seed=1)
        assert np.array_equal(again.per_problem, sampled.per_problem)  # fixed seed: the same numbers


def walk_script(seed):
    """Each path has 1-3 steps, each scored 0.25 or 0.5, and answers 1, 2 or 3: ties in counts,
    sums and best scores are common, and paths finish in an order set by their lengths. (The fake
    engine tells a path by its fork `branch` at its first step only, so the first step names it;
    crc32, not hash(): the same paths in every process.)"""
    def script(steps, branch):
        name = steps[0].split("|")[0] if steps else f"path {branch} "
        path = random.Random(zlib.crc32(repr((seed, name)).encode()))
        length, answer = path.randint(1, 3), path.randint(1, 3)
        score = random.Random(zlib.crc32(repr((seed, name, len(steps))).encode())).choice([0.25, 0.5])
        if len(steps) + 1 >= length:
            return f"{name}so \\boxed{{{answer}}} |{score}", "eos"
        return f"{name}|{score}\n\n", "stop"
    return script


def top_two_tied(result, select):
    """Whether the live pick was decided by a tie (the order of the candidates)."""
    if select == "max":
        keys = [c.score or 0.0 for c in result.candidates if c.answer is not None]
    else:
        keys = [v["count"] if select == "majority" else (v["score"], v["count"]) for v in result.votes.values()]
    keys.sort(reverse=True)
    return len(keys) > 1 and keys[0] == keys[1]


@pytest.mark.parametrize("strategy,select,aggregation", [("majority", "majority", "last"),
                                                          ("best-of-n", "vote", "last"),
                                                          ("best-of-n", "vote", "min"),
                                                          ("best-of-n", "max", "min")])
def test_at_n_max_the_estimate_is_the_live_searchs_pick(strategy, select, aggregation):
    ties_seen = 0
    for seed, n in itertools.product(range(30), (4, 6)):
        config = SearchConfig(n=n, aggregation=aggregation, selection="vote" if select == "majority" else select)
        verifier = ScoreInTextVerifier() if strategy == "best-of-n" else None
        result = run_search(strategy, "p", FakeEngine(walk_script(seed)), verifier, config)
        record = {"id": seed, "reference": "2", "config": result.config,
                  "candidates": [c.as_dict() for c in result.candidates]}
        got = expected_accuracy([Pool.from_record(record)], select, n, aggregation=aggregation)
        assert got.exact.all()
        assert got.mean == float(answers_match(result.answer, "2")), (seed, n)
        ties_seen += top_two_tied(result, select)
    assert ties_seen >= 4  # the comparison covered picks that ties decided


def test_pools_from_records_skip_errors_and_unreferenced():
    records = [{"id": 1, "reference": "3", "candidates": [{"answer": "3"}], "correct": True},
               {"id": 2, "error": "boom", "correct": False},
               {"id": 3, "reference": None, "candidates": [{"answer": "3"}]}]
    assert [p.id for p in pools_from_records(records)] == [1]
    assert record_accuracies(records) == {1: 1.0}  # the error record is left out, as pools leave it out
    with pytest.raises(PoolError, match="budget 2"):
        expected_accuracy(pools_from_records(records), "majority", 2)


def test_records_without_step_scores_only_know_their_runs_aggregation():
    pool = Pool.from_record({"id": 1, "reference": "1", "config": {"aggregation": "min"},
                             "candidates": [{"answer": "1", "score": 0.25}, {"answer": "2", "score": 0.5}]})
    assert expected_accuracy([pool], "max", 2).mean == 0.0  # the run's own (min): "2" wins
    with pytest.raises(PoolError, match="no step_scores"):
        expected_accuracy([pool], "max", 2, aggregation="last")


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_problems():
    rng = np.random.default_rng(0)
    widths = []
    for size in (40, 400):
        values = rng.binomial(1, 0.4, size).astype(float)
        iv = bootstrap_interval(values, level=0.9, seed=1)
        assert iv.lo <= values.mean() <= iv.hi and iv.problems == size
        widths.append(iv.hi - iv.lo)
    assert widths[1] < widths[0] / 2
    assert bootstrap_interval([0.5]).as_dict() == {"mean": 0.5, "lo": 0.5, "hi": 0.5, "level": 0.9, "problems": 1}


def test_paired_difference_detects_a_real_difference_and_not_a_zero_one():
    rng = np.random.default_rng(0)
    b = rng.binomial(1, 0.5, 200).astype(float)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:25]] = 1.0  # a is right on 25 more problems, never worse
    d = paired_difference(a, b, seed=2)
    assert d.clearly_positive and d.lo > 0 and d.mean == pytest.approx(25 / 200)
    c = b.copy()  # as many gains as losses: no difference
    c[np.flatnonzero(b == 0)[:15]] = 1.0
    c[np.flatnonzero(b == 1)[:15]] = 0.0
    zero = paired_difference(c, b, seed=2)
    assert zero.mean == 0 and not zero.clearly_positive and zero.lo < 0 < zero.hi
    with pytest.raises(ValueError, match="same problems"):
        paired_difference(a, b[:10])


def cell_for(majority, others, cot=None):
    ids = range(len(majority))
    cell = {"majority_n8": dict(zip(ids, majority))}
    if cot is not None:
        cell["cot_n1"] = dict(zip(ids, cot))
    cell.update({k: dict(zip(ids, v)) for k, v in others.items()})
    return cell


def test_choice_keeps_the_default_on_noise_and_switches_on_a_clear_win():
    majority = [1, 0, 1, 0, 0, 1, 0, 0, 1, 0]
    one_better = [1, 1, 1, 0, 0, 1, 0, 0, 1, 0]  # 1 problem better out of 10
    noise = choose_setting(cell_for(majority, {"vote": one_better}, cot=[0] * 10), majority="majority_n8",
                           cot="cot_n1")
    assert noise["setting"] == "majority_n8" and noise["rule"] == "default" and noise["difference"] is None
    assert noise["accuracies"]["vote"] == 0.5 and noise["default_accuracy"] == 0.4
    assert noise["margin"] > 0.1  # one problem in ten is inside the noise

    majority = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0] * 3
    clear = [1, 1, 1, 0, 1, 1, 1, 0, 1, 1] * 3  # right on 15 more of 30, never worse
    slight = [1, 1, 0, 0, 1, 0, 0, 0, 1, 0] * 3
    win = choose_setting(cell_for(majority, {"slight": slight, "clear": clear}), majority="majority_n8")
    assert win["setting"] == "clear" and win["rule"].startswith("beats default by 0.500 [")
    assert win["difference"]["clearly_positive"] and win["level"] == 0.9 and win["simultaneous"]
    assert win["critical"] > 1.6  # two settings: wider than one setting's own 90% interval
    assert set(win["differences"]) == {"slight", "clear"} and win["differences"]["clear"] == win["difference"]
    json.dumps(win), yaml.safe_dump(win)  # plain types


def test_many_settings_with_no_real_gain_rarely_beat_the_default():
    # 30 settings, each as good as majority on average, differing from it by chance on 60
    # problems: compared one by one, some setting clears its own 90% bound in most calibrations
    rng = np.random.default_rng(11)
    lucky_alone = lucky_together = 0
    for _ in range(30):
        majority = (rng.random(60) < 0.4).astype(float)
        others = {f"s{k}": np.where(rng.random(60) < 0.3, (rng.random(60) < 0.4).astype(float), majority)
                  for k in range(30)}
        cell = cell_for(majority, others)
        kw = dict(majority="majority_n8", resamples=1000)
        lucky_alone += choose_setting(cell, adjust=False, **kw)["setting"] != "majority_n8"
        lucky_together += choose_setting(cell, **kw)["setting"] != "majority_n8"
    assert lucky_alone >= 15 and lucky_together <= 5


def test_copies_of_a_setting_do_not_widen_the_intervals():
    # a grid holds near-copies (one pool at two aggregations): twenty copies of a setting ask for
    # the margin one does; Bonferroni would ask for z(1 - 0.1 / 40) = 3.0 spreads instead of 1.6
    rng = np.random.default_rng(3)
    base = (rng.random(80) < 0.3).astype(float)
    better = np.maximum(base, (rng.random(80) < 0.25).astype(float))
    one, critical_one = simultaneous_differences({"a": better}, base, seed=1, resamples=4000)
    many, critical_many = simultaneous_differences({f"a{k}": better for k in range(20)}, base, seed=1,
                                                   resamples=4000)
    assert critical_many == pytest.approx(critical_one) and 1.5 < critical_one < 2.0
    assert many["a7"].lo == pytest.approx(one["a"].lo) and one["a"].clearly_positive
    alone = paired_difference(better, base, seed=1, resamples=4000)
    assert abs(one["a"].lo - alone.lo) < 0.02  # one setting: about its own interval
    same, _ = simultaneous_differences({"copy": base, "a": better}, base, resamples=1000)
    assert (same["copy"].lo, same["copy"].hi) == (0.0, 0.0) and not same["copy"].clearly_positive


def test_cot_is_the_default_when_it_is_as_good():
    majority = [1, 0] * 10
    out = choose_setting(cell_for(majority, {"vote": majority}, cot=[0, 1] * 10), majority="majority_n8",
                         cot="cot_n1")
    assert out["setting"] == out["default"] == "cot_n1" and out["rule"] == "default"


def test_small_bins_merge_with_a_neighbour_or_with_everything():
    assert decision_bins("hard", {"easy": 25, "medium": 25, "hard": 5}, 20) == \
        (["hard", "medium"], "bin too small: merged with medium")
    assert decision_bins("medium", {"easy": 3, "medium": 4, "hard": 25}, 20) == \
        (["medium", "hard"], "bin too small: merged with hard")
    assert decision_bins("easy", {"easy": 3, "medium": 4, "hard": 25}, 20) == \
        (["easy", "medium", "hard"], "bin too small: all-problem choice")
    assert decision_bins("easy", {"easy": 30}, 20) == (["easy"], None)

    bins = ["easy"] * 25 + ["medium"] * 25 + ["hard"] * 5
    bin_of = dict(enumerate(bins))
    majority = [1.0] * 25 + [0.5] * 25 + [0.0] * 5
    search = [1.0] * 25 + [0.5] * 25 + [1.0] * 5  # better on hard problems only
    choices = choose_profile({8: cell_for(majority, {"beam": search})}, bin_of, majority={8: "majority_n8"},
                             min_problems=20)
    by_bin = {c["bin"]: c for c in choices}
    assert by_bin["hard"]["rule"] == "bin too small: merged with medium"
    assert by_bin["hard"]["decided_on"] == ["hard", "medium"] and by_bin["hard"]["bin_problems"] == 5
    assert by_bin["hard"]["problems"] == 30 and by_bin["easy"]["rule"] == "default"
    yaml.safe_dump(choices)


def test_heldout_split_is_stable_when_problems_are_added():
    first = heldout_ids(range(1000), share=0.3, seed=7)
    more = heldout_ids(range(3000), share=0.3, seed=7)
    assert more & set(range(1000)) == first
    assert 0.25 < len(more) / 3000 < 0.35
    assert heldout_ids([f"id-{i}" for i in range(50)], seed=1) != heldout_ids([f"id-{i}" for i in range(50)], seed=2)


def test_profile_on_heldout_predicted_and_realized():
    rng = np.random.default_rng(5)
    ids = [f"p{i}" for i in range(300)]
    bin_of = {i: ["easy", "medium", "hard"][k % 3] for k, i in enumerate(ids)}
    rate = {"easy": (0.9, 0.9), "medium": (0.4, 0.8), "hard": (0.1, 0.1)}  # (majority, vote)
    cell = {"majority_n8": {i: float(rng.random() < rate[bin_of[i]][0]) for i in ids},
            "vote": {i: float(rng.random() < rate[bin_of[i]][1]) for i in ids}}
    held = heldout_ids(ids, share=0.3)
    calibration = set(ids) - held
    choices = choose_profile({8: cell}, bin_of, majority={8: "majority_n8"}, problems=calibration)
    assert {c["bin"]: c["setting"] for c in choices}["medium"] == "vote"
    (report,) = evaluate_profile_on_heldout(choices, {8: cell}, bin_of, held, majority={8: "majority_n8"})
    assert report["heldout_problems"] == len(held) and report["calibration_problems"] == len(calibration)
    chosen = report["profile"]["settings"]
    realized = np.mean([cell[chosen[bin_of[i]]][i] for i in ids if i in held])
    assert report["profile"]["realized"]["mean"] == round(realized, 4)
    # predicted: each bin's calibration mean of its choice, weighted by the held-out bin sizes
    held_bins = [bin_of[i] for i in ids if i in held]
    want = sum(held_bins.count(b) / len(held_bins) *
               np.mean([cell[chosen[b]][i] for i in calibration if bin_of[i] == b]) for b in chosen)
    predicted, realized = report["profile"]["predicted"], report["profile"]["realized"]
    assert predicted["mean"] == round(want, 4)
    assert predicted["lo"] < predicted["mean"] < predicted["hi"] and realized["lo"] < predicted["mean"] < realized["hi"]
    assert report["best_fixed"]["setting"] == "vote" and report["majority"]["setting"] == "majority_n8"
    assert report["profile_minus_majority"]["mean"] > 0
    json.dumps(report)


def test_probe_features_from_candidates():
    cands = candidates(POOL_A)  # answers 1, 2, 1, 2, None, 3; last scores .5 .5 .25 .5 .75 .75
    f = probe_features(cands)
    assert set(f) == set(FEATURES)
    assert f["answered"] == pytest.approx(5 / 6)
    assert f["agreement"] == pytest.approx((2 / 15) ** 0.5)
    assert f["mean_score"] == pytest.approx(3.25 / 6) and f["max_score"] == 0.75
    assert f["top_share"] == pytest.approx(1.0 / 3.25)  # "2": 0.5 + 0.5 of 3.25
    unscored = probe_features([{"answer": "4", "score": None}, {"answer": "4", "score": None}])
    assert unscored == {"agreement": 1.0, "answered": 1.0}
    pool = Pool.from_candidates(cands, "2", aggregation="last")
    assert probe_features(pool.probe(6)) == f


def toy_difficulty(count=90, seed=0):
    rng = np.random.default_rng(seed)
    rows, bins = [], []
    for k in range(count):
        b = ["easy", "medium", "hard"][k % 3]
        centre = {"easy": 0.9, "medium": 0.5, "hard": 0.1}[b]
        rows.append({"agreement": centre + rng.uniform(-0.08, 0.08), "answered": rng.uniform(0.8, 1.0)})
        bins.append(b)
    return rows, bins


def test_difficulty_model_fits_a_separable_set_and_predicts_from_plain_lists():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    rows, bins = toy_difficulty()
    model = fit_difficulty_model(rows, bins, c=100.0)
    assert model["features"] == ["agreement", "answered"] and model["cv_accuracy"] >= 0.95
    assert model["baselines"]["most_common_bin"] == pytest.approx(1 / 3, abs=1e-3)
    stored = yaml.safe_load(yaml.safe_dump(json.loads(json.dumps(model))))
    x = np.array([[r["agreement"], r["answered"]] for r in rows])
    reference = LogisticRegression(C=100.0, max_iter=2000).fit(x, bins).predict(x)
    assert [predict_bin(stored, r) for r in rows] == list(reference)
    assert predict_bin(stored, {"agreement": 0.95, "answered": 1.0}) == "easy"
    assert predict_bin(stored, {"agreement": 0.05, "answered": 1.0}) == "hard"
    with pytest.raises(ValueError, match="answered"):
        predict_bin(stored, {"agreement": 0.5})

    two = [(r, b) for r, b in zip(rows, bins) if b != "medium"]  # two classes: one row in scikit-learn
    binary = fit_difficulty_model([r for r, _ in two], [b for _, b in two])
    assert len(binary["coef"]) == 2
    assert [predict_bin(binary, r) for r, _ in two] == [b for _, b in two]


def test_difficulty_model_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    rows, bins = toy_difficulty(9)
    with pytest.raises(ImportError, match=r"pip install 'tts_cli\[train\]'"):
        fit_difficulty_model(rows, bins)
