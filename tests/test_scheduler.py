"""The scheduler: many searches on one engine, interleaved at the token level.

Fake-engine tests pin the mechanics (who is in each decode, merged verifier calls, admission,
failures); real-engine tests pin what a user relies on: the same answers whatever the
concurrency, compute that adds up, nothing leaked.
"""

import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.engine import EngineError
from tts_cli.search import Job, Scheduler, SearchConfig
from tts_cli.search.common import Search


def fast_and_slow(steps, branch, prompt):
    """Problem "fast": 1-token steps; problem "slow": 10-token steps. Three steps, then an answer."""
    if len(steps) >= 3:
        return "\\boxed{1}", "eos"
    return ("a\n\n" if "fast" in prompt else "x" * 38 + "\n\n"), "stop"


def test_a_search_resumes_as_soon_as_its_step_ends_while_another_is_mid_step():
    engine = FakeEngine(fast_and_slow)
    scheduler = Scheduler(engine, None, max_searches=2)
    jobs = [Job("slow problem", "majority", SearchConfig(n=2), tag="slow"),
            Job("fast problem", "majority", SearchConfig(n=2), tag="fast")]
    order = [job.tag for job, _ in scheduler.run(jobs)]
    assert order == ["fast", "slow"]  # the fast search did not wait for the slow one's steps
    slow_key, fast_key = sorted({o for rows in engine.decode_rows for o in rows})
    # every decode held every live sequence of both searches: 2 + 2 rows while both were live
    assert engine.decode_rows[0].count(slow_key) == 2 and engine.decode_rows[0].count(fast_key) == 2
    fast_decodes = [i for i, rows in enumerate(engine.decode_rows) if fast_key in rows]
    # three 1-token steps and a 2-token answer in the first five decodes...
    assert fast_decodes == [0, 1, 2, 3, 4]
    assert len(engine.decode_rows) == 3 * 10 + 2  # ...while the slow search was in its first step
    assert not engine.live


def scored_script(steps, branch):
    if len(steps) >= 2:
        return f"\\boxed{{{branch}}} |0.{branch + 1}", "eos"
    return f"step {len(steps)} |0.{branch + 3}\n\n", "stop"


def test_verifier_requests_of_all_searches_are_merged_into_one_call():
    engine, verifier = FakeEngine(scored_script), ScoreInTextVerifier()
    jobs = [Job(f"p{i}", "beam", SearchConfig(n=4, beam_width=2), tag=i) for i in range(3)]
    results = dict((job.tag, r) for job, r in Scheduler(engine, verifier, max_searches=3).run(jobs))
    assert all(r.candidates for r in results.values())
    assert any(len(keys) == 3 for keys in verifier.call_keys)  # one call scored all three searches
    alone = ScoreInTextVerifier()
    for i in range(3):
        list(Scheduler(FakeEngine(scored_script), alone).run([Job(f"p{i}", "beam", SearchConfig(n=4, beam_width=2))]))
    assert len(verifier.calls) < len(alone.calls) and sum(verifier.calls) == sum(alone.calls)
    assert not verifier.open  # every stage's verifier state was ended
    assert not engine.live


def test_admission_keeps_the_searches_within_the_engine_slots():
    engine = FakeEngine(scored_script, n_seq_max=9)
    jobs = [Job(f"p{i}", "majority", SearchConfig(n=4), tag=i) for i in range(5)]
    scheduler = Scheduler(engine, None, max_searches=5)
    results = list(scheduler.run(jobs))
    assert sorted(job.tag for job, _ in results) == [0, 1, 2, 3, 4]
    assert engine.peak_live <= 9  # never more sequences than slots
    # two searches' paths fit at once; a third starts as soon as the paths of one have ended
    # (before that search returns), so more than two are in flight at times
    assert scheduler.peak_searches > 2
    assert not engine.live


def test_a_search_that_cannot_fit_or_fails_is_reported_and_the_others_go_on():
    engine = FakeEngine(scored_script, n_seq_max=8)
    jobs = [Job("too big", "majority", SearchConfig(n=16), tag="big"),
            Job("bad", "beam", SearchConfig(n=6, beam_width=4), tag="bad"),
            Job("fine", "majority", SearchConfig(n=2), tag="fine")]
    out = {job.tag: r for job, r in Scheduler(engine, ScoreInTextVerifier(), max_searches=3).run(jobs)}
    assert isinstance(out["big"], EngineError) and "needs 16 sequences" in str(out["big"])
    assert "multiple of the beam width" in str(out["bad"])
    assert out["fine"].candidates and not engine.live


def test_compute_of_the_searches_adds_up_to_the_engine_totals_on_the_fake():
    engine = FakeEngine(fast_and_slow)
    jobs = [Job(p, "majority", SearchConfig(n=n)) for p, n in [("fast", 2), ("slow", 3), ("fast 2", 4)]]
    results = [r for _, r in Scheduler(engine, None, max_searches=3).run(jobs)]
    assert sum(r.compute["policy"]["tokens_generated"] for r in results) == engine.stats.tokens_generated
    assert sum(r.compute["policy"]["decode_calls"] for r in results) == pytest.approx(engine.stats.decode_calls)


def test_stages_of_a_search_sample_from_different_seed_streams():
    search = Search("p", FakeEngine(scored_script), None, key=7)
    seeds = [search.run("majority", SearchConfig(seed=5)).sampling().seed for _ in range(3)]
    assert len(set(seeds)) == 3 and seeds[0] == 5


# --- the real engine -------------------------------------------------------------------------

PROBLEMS = ["What is 2 + 3?", "What is 7 - 4?", "What is 3 * 3?", "What is 10 + 11?", "What is 6 / 2?"]


def run_all(model, strategy, cfg, k, prm=None, problems=PROBLEMS):
    from tts_cli.solver import close, open_policy, open_verifier
    policy = open_policy(model, cfg, strategy=strategy, concurrency=k, n_threads=2, context_per_path=512)
    verifier = open_verifier(prm, policy, cfg, concurrency=k, n_threads=2, context_per_path=512)
    scheduler = Scheduler(policy, verifier, max_searches=k)
    results = {job.tag: r for job, r in scheduler.run(Job(p, strategy, cfg, tag=i) for i, p in enumerate(problems))}
    v_engine = getattr(verifier, "engine", None)
    totals = (policy.stats.as_dict(), v_engine.stats.as_dict() if v_engine else None)
    leaked = len(policy.live_sequences()) + (len(v_engine.live_sequences()) if v_engine else 0)
    close(policy, verifier)
    return results, totals, leaked, scheduler


@pytest.mark.parametrize("strategy,prm", [("majority", None), ("beam", "confidence"), ("dvts", "judge")])
def test_concurrent_searches_give_the_same_answers_and_their_compute_adds_up(tiny_q4_model, strategy, prm):
    from tts_cli.engine import Model
    model = Model(tiny_q4_model)
    cfg = SearchConfig(n=4, beam_width=2, max_steps=3, max_step_tokens=12, seed=11)
    alone, _, leaked1, _ = run_all(model, strategy, cfg, 1, prm)
    together, (policy, verifier), leaked3, scheduler = run_all(model, strategy, cfg, 3, prm)
    assert scheduler.peak_searches == 3 and scheduler.rows_decoded / scheduler.decode_steps > 4
    for i in range(len(PROBLEMS)):
        assert together[i].answer == alone[i].answer
        assert [c.text for c in together[i].candidates] == [c.text for c in alone[i].candidates]
    assert leaked1 == leaked3 == 0
    for part, total in (("policy", policy), ("verifier", verifier)):
        if total is None:
            continue
        per = [r.compute[part] for r in together.values()]
        for key in ("tokens_prefilled", "tokens_generated", "tokens_evaluated"):
            assert sum(c[key] for c in per) == total[key], (part, key)
        assert sum(c["decode_calls"] for c in per) == pytest.approx(total["decode_calls"], abs=1e-2)
        assert sum(c["seconds"] for c in per) == pytest.approx(total["seconds"], abs=1e-2)
    if prm == "judge":
        assert scheduler.score_calls > 0


@pytest.mark.slow
def test_same_seed_same_answers_at_any_concurrency_on_smollm2(smollm2):
    from tts_cli.engine import Model
    model = Model(smollm2)
    cfg = SearchConfig(n=4, max_steps=3, max_step_tokens=32, seed=2, prompt="few-shot")
    alone, _, _, _ = run_all(model, "majority", cfg, 1, problems=PROBLEMS[:4])
    together, _, leaked, _ = run_all(model, "majority", cfg, 4, problems=PROBLEMS[:4])
    assert leaked == 0
    for i in range(4):
        assert [c.text for c in together[i].candidates] == [c.text for c in alone[i].candidates]
    # and a different seed samples differently
    other, _, _, _ = run_all(model, "majority", SearchConfig(**{**cfg.as_dict(), "seed": 3}), 4, problems=PROBLEMS[:4])
    assert any([c.text for c in other[i].candidates] != [c.text for c in alone[i].candidates] for i in range(4))


def test_a_full_context_ends_paths_with_reason_context():
    engine = FakeEngine(lambda steps, branch: ("more words here\n\n", "stop"), n_ctx=10)
    result = next(r for _, r in Scheduler(engine, None).run([Job("p", "majority", SearchConfig(n=2))]))
    assert [c.finish_reason for c in result.candidates] == ["context", "context"]
    assert not engine.live


def test_no_two_sampled_paths_of_an_auto_search_share_a_seed(tmp_path):
    from test_auto import make_profile
    engine = FakeEngine(lambda steps, branch: ("The answer is \\boxed{7} |0.9", "eos"))
    cfg = SearchConfig(n=8, probe=2, profile=str(make_profile(tmp_path)))
    result = next(r for _, r in Scheduler(engine, ScoreInTextVerifier()).run([Job("p", "auto", cfg)]))
    assert result.auto["chosen"] == "majority" and len(result.candidates) == 8
    seeds = [s.sampling.seed for s in engine.started if not s.sampling.greedy]
    assert len(seeds) == 8 and len(set(seeds)) == 8  # the probe's 2 paths and the other 6


def test_add_step_done_drive_searches_that_arrive_while_others_run():
    """A feeder (a Ray worker, a server) adds searches as they arrive and steps the scheduler;
    the answers are those of run() over the same jobs."""
    expected = {job.tag: r.answer for job, r in Scheduler(FakeEngine(fast_and_slow), None, max_searches=4).run(
        [Job("slow problem", "majority", SearchConfig(n=2), tag="slow"),
         Job("fast problem", "majority", SearchConfig(n=2), tag="fast")])}
    engine = FakeEngine(fast_and_slow)
    scheduler = Scheduler(engine, None, max_searches=4)
    assert scheduler.done()
    scheduler.add(Job("slow problem", "majority", SearchConfig(n=2), tag="slow"))
    ended = {}
    for i in range(200):
        if i == 3:  # the second search arrives while the first is mid-step
            scheduler.add(Job("fast problem", "majority", SearchConfig(n=2), tag="fast"))
        ended.update((job.tag, r.answer) for job, r in scheduler.step())
        if scheduler.done():
            break
    assert ended == expected and not engine.live


def test_cancel_frees_a_search_at_once_and_the_others_go_on():
    engine = FakeEngine(fast_and_slow)
    scheduler = Scheduler(engine, None, max_searches=4)
    slow = Job("slow problem", "majority", SearchConfig(n=4), tag="slow")
    scheduler.add(slow)
    scheduler.add(Job("fast problem", "majority", SearchConfig(n=2), tag="fast"))
    scheduler.step()
    assert scheduler.cancel(slow) and not scheduler.cancel(slow)
    assert not [s for s in engine.live.values() if s.owner == engine.started[0].owner]  # its sequences are gone
    ended = []
    while not scheduler.done():
        ended += [job.tag for job, _ in scheduler.step()]
    assert ended == ["fast"] and not engine.live
