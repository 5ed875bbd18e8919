"""Early stopping estimated from a pool (tts_cli.pools.adaptive) against the live stopping rule
of search/adaptive.py applied to every order of small pools. No model runs."""

import itertools

import numpy as np
import pytest

from test_pools import POOL_A, POOL_B, candidates
from tts_cli.answers import answers_match
from tts_cli.pools import Pool, expected_accuracy
from tts_cli.pools.adaptive import adaptive_accuracy, stopping_points
from tts_cli.search.adaptive import stop_reason
from tts_cli.search.common import choose_answer, group_answers


def pool_of(spec, tokens=None):
    cands = candidates(spec)
    for c, t in zip(cands, tokens or [None] * len(cands)):
        c.tokens = t
    return Pool.from_candidates(cands, spec["reference"], id="p", aggregation="last"), cands


def live(cands, order, n, wave, threshold, use_verifier, reference):
    """search/adaptive.py's loop on candidates arriving in `order`: (paths sampled, right?)."""
    sampled = 0
    while sampled < n:
        sampled = min(n, sampled + wave)
        if sampled == n:
            break
        so_far = [cands[i] for i in order[:sampled]]
        votes = [g["score"] if use_verifier else g["count"] for g in group_answers(so_far).values()]
        if stop_reason(sorted(votes, reverse=True), n - sampled, threshold) is not None:
            break
    chosen = [cands[i] for i in sorted(order[:sampled])]  # ties go to the earliest recorded, as estimates break them
    answer = choose_answer(chosen, group_answers(chosen), "vote" if use_verifier else "majority")
    return sampled, answers_match(answer, reference)


@pytest.mark.parametrize("spec", [POOL_A, POOL_B], ids=["A", "B"])
@pytest.mark.parametrize("use_verifier", [False, True])
@pytest.mark.parametrize("threshold", [0.6, 0.8, 1.01])
def test_the_pool_stops_where_the_live_rule_stops_in_every_order(spec, use_verifier, threshold):
    pool, cands = pool_of(spec)
    n, wave = 6, 2
    orders = np.array(list(itertools.permutations(range(pool.size))))
    scores = pool.path_scores() if use_verifier else None
    sampled = stopping_points(pool, orders, n, wave, threshold, scores)
    brute = [live(cands, list(o), n, wave, threshold, use_verifier, spec["reference"]) for o in orders]
    assert sampled.tolist() == [s for s, _ in brute]

    est = adaptive_accuracy([pool], n, threshold=threshold, wave=wave, use_verifier=use_verifier, orders=20000)
    exact = float(np.mean([right for _, right in brute]))
    assert abs(est.accuracy.mean - exact) <= 4 * est.accuracy.monte_carlo_se + 1e-9
    assert est.paths[0] == pytest.approx(np.mean([s for s, _ in brute]), abs=0.05)


def test_a_rule_that_never_stops_is_majority_at_n():
    # threshold above 1: only "the leader cannot be overtaken" stops it, which never changes the
    # majority's answer; so the estimate is majority at n, up to the orders' Monte Carlo error
    pool, _ = pool_of(POOL_B)
    est = adaptive_accuracy([pool], 5, threshold=1.01, wave=2, orders=20000)
    plain = expected_accuracy([pool], "majority", 5).mean
    assert abs(est.accuracy.mean - plain) <= 4 * est.accuracy.monte_carlo_se + 1e-9


def test_tokens_count_what_was_sampled():
    pool, _ = pool_of(POOL_A, tokens=[10, 20, 30, 40, 50, 60])
    est = adaptive_accuracy([pool], 6, threshold=0.0, wave=2, orders=500)  # stops at the first answered wave
    assert est.full_tokens[0] == pytest.approx(210)
    assert est.tokens[0] == pytest.approx(est.paths[0] * 35, rel=0.15)
    assert 0 < est.token_ratio < 1
    assert adaptive_accuracy([pool], 6, threshold=1.01, wave=6, orders=50).token_ratio == pytest.approx(1.0)


def test_records_without_token_counts_share_the_runs_tokens_by_text_length():
    record = {"id": "x", "reference": "2", "config": {"aggregation": "last"},
              "compute": {"policy": {"tokens_generated": 300}},
              "candidates": [{"answer": "2", "steps": ["a" * 10]}, {"answer": "3", "steps": ["b" * 20]}]}
    pool = Pool.from_record(record)
    assert pool.tokens_estimated and pool.tokens.tolist() == [100.0, 200.0]
    record["candidates"] = [{"answer": "2", "steps": ["a"], "tokens": 7}, {"answer": "3", "steps": ["b"], "tokens": 9}]
    pool = Pool.from_record(record)
    assert not pool.tokens_estimated and pool.tokens.tolist() == [7.0, 9.0]
