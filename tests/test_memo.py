"""Shared draws (search/memo.py): a run against a memo other runs filled is the same run as
against an empty one, only cheaper; runs of different settings share what they both sample."""

import random

import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.search import Job, Scheduler, SearchConfig, StepMemo
from tts_cli.search.memo import child_key, draw_seed, root_key


def seeded_script(finish_depth=4):
    """A step is a function of the path so far and the sampler's seed only (as a real sampler's
    is): the same draw gives the same step whoever asks for it."""
    def script(steps, branch, seed):
        rng = random.Random(f"{steps!r}|{seed}")  # (a str seed is hashed the same in every process)
        score = round(rng.random(), 4)
        depth = len(steps) + 1
        if depth >= finish_depth or rng.random() < 0.15:
            return f"so \\boxed{{{rng.randint(1, 4)}}} |{score}", "eos"
        return f"step {depth}.{rng.randint(0, 9)} |{score}\n\n", "stop"
    return script


def run(jobs, memo, engine=None, max_searches=1):
    engine = engine or FakeEngine(seeded_script())
    out = dict((job.tag, r) for job, r in Scheduler(engine, ScoreInTextVerifier(), max_searches=max_searches,
                                                     memo=memo).run(jobs))
    return out, engine


def summary(result):
    """The answer, the candidates and the tree, in no particular order (parts of a search that
    run side by side number their nodes in the order their steps end, and a replayed step ends at
    once). A tie in the vote goes to the answer that finished first, so a tied answer is left out."""
    tree = result.tree

    def text(node):
        return "" if node.parent is None else text(tree[node.parent]) + node.step
    counts = sorted((v["count"] for v in result.votes.values()), reverse=True)
    scores = sorted((v["score"] for v in result.votes.values()), reverse=True)
    tied = len(counts) > 1 and (counts[0] == counts[1] or scores[0] == scores[1])
    return (None if tied else result.answer, sorted((c.steps, c.step_scores, c.answer) for c in result.candidates),
            sorted((text(n), n.state, n.reason) for n in tree))


SETTINGS = [("beam", SearchConfig(n=16, beam_width=4)), ("beam", SearchConfig(n=4, beam_width=4)),
            ("beam", SearchConfig(n=8, beam_width=2, aggregation="min")),
            ("dvts", SearchConfig(n=16, beam_width=4)), ("dvts", SearchConfig(n=8, beam_width=2)),
            ("best-of-n", SearchConfig(n=16)), ("majority", SearchConfig(n=4)),
            ("particle-filter", SearchConfig(n=8)), ("beam", SearchConfig(n=8, beam_width=4, lookahead=1)),
            ("majority-adaptive", SearchConfig(n=8, wave=2)), ("cot", SearchConfig())]


@pytest.mark.parametrize("problem", ["p", "q"])
def test_a_run_replaying_other_runs_draws_is_the_run_it_would_be_alone(problem):
    alone = {i: run([Job(problem, s, c, tag=i)], StepMemo())[0][i] for i, (s, c) in enumerate(SETTINGS)}
    memo = StepMemo()
    shared, engine = run([Job(problem, s, c, tag=i) for i, (s, c) in enumerate(SETTINGS)], memo)
    for i in alone:
        assert summary(shared[i]) == summary(alone[i]), SETTINGS[i]
    assert memo.stats.hits > 0
    # the shared calibration generated each draw once: fewer steps than the runs alone
    steps_alone = sum(len(r.tree) - 1 for r in alone.values())
    assert memo.stats.misses < steps_alone
    assert memo.stats.hits + memo.stats.misses >= steps_alone - 20  # lookahead rollouts bypass the memo


def test_order_and_concurrency_do_not_change_what_a_run_draws():
    jobs = [Job("p", s, c, tag=i) for i, (s, c) in enumerate(SETTINGS)]
    forward, _ = run(jobs, StepMemo())
    backward, _ = run(list(reversed(jobs)), StepMemo())
    together, _ = run(jobs, StepMemo(), max_searches=4)
    for i in forward:
        assert summary(forward[i]) == summary(backward[i]) == summary(together[i])


def test_smaller_beam_replays_the_larger_ones_first_steps():
    memo = StepMemo()
    big, _ = run([Job("p", "beam", SearchConfig(n=16, beam_width=4), tag=0)], memo)
    first_steps = [n.step for n in big[0].tree if n.depth == 1]
    small, _ = run([Job("p", "beam", SearchConfig(n=4, beam_width=4), tag=0)], memo)
    assert [n.step for n in small[0].tree if n.depth == 1] == first_steps[:4]
    shared = small[0].compute["shared"]
    assert shared["steps"] >= 4 and shared["tokens"] > 0
    assert small[0].compute["flops_unshared"] > small[0].compute["flops"]


def test_identical_paths_still_draw_independent_next_steps():
    """Two paths with the same text are one context: they take different draws from it, so
    they do not stay identical (as two live samples would not)."""
    def script(steps, branch, seed):
        if not steps:
            return "same start\n\n", "stop"
        rng = random.Random(seed)
        return f"\\boxed{{{rng.randint(0, 10**6)}}}", "eos"
    result, _ = run([Job("p", "majority", SearchConfig(n=4), tag=0)], StepMemo(), engine=FakeEngine(script))
    assert len({c.steps[1] for c in result[0].candidates}) == 4


def test_a_path_goes_on_from_replayed_steps_with_them_in_its_sequence():
    memo = StepMemo()
    run([Job("p", "best-of-n", SearchConfig(n=4, max_steps=2), tag=0)], memo)
    # beam N=4 replays the pool's first steps, then samples more children of them than the pool
    # did: its sequences must hold the replayed step before they generate
    result, engine = run([Job("p", "beam", SearchConfig(n=4, beam_width=2, max_steps=3), tag=0)], memo)
    assert engine.replayed, "no sequence caught up on a replayed step"
    for c in result[0].candidates:
        assert all(s for s in c.steps)


def test_beam_survivors_catch_up_on_replayed_steps_in_one_prefill_batch():
    memo = StepMemo()
    run([Job("p", "best-of-n", SearchConfig(n=8, max_steps=2), tag=0)], memo)
    # beam N=8 M=2 replays the pool's 8 first steps; its 4 survivors each fork 2 children, which
    # need more draws than the pool made: all 4 prefill their replayed step together
    result, engine = run([Job("p", "beam", SearchConfig(n=8, beam_width=2, max_steps=3), tag=0)], memo)
    assert result[0].compute["shared"]["steps"] >= 8
    assert max(engine.replay_batches) == 4, engine.replay_batches


def test_draw_seeds_differ_by_place():
    a, b = root_key("sig", "prompt"), root_key("sig", "prompt 2")
    assert root_key("sig", "prompt") == a and root_key("sig2", "prompt") != a
    seeds = {draw_seed((key, i)) for key in (a, b, child_key(a, 0), child_key(a, 1)) for i in range(100)}
    assert len(seeds) == 400


def test_other_sampling_settings_do_not_share_draws():
    memo = StepMemo()
    run([Job("p", "best-of-n", SearchConfig(n=8, temperature=0.7), tag=0)], memo)
    hits = memo.stats.hits
    run([Job("p", "best-of-n", SearchConfig(n=8, temperature=0.3), tag=0)], memo)
    run([Job("p", "best-of-n", SearchConfig(n=8, seed=1), tag=0)], memo)
    assert memo.stats.hits == hits


def test_the_memo_forgets_the_least_recently_used_steps():
    memo = StepMemo(max_steps=10)
    run([Job("p", "best-of-n", SearchConfig(n=16), tag=0)], memo)
    assert len(memo) == 10


def test_searches_in_flight_together_wait_for_a_draw_another_is_generating():
    """Settings of one problem run side by side and all start from the prompt: the first steps
    are generated once, not once per search."""
    jobs = [Job("p", "beam", SearchConfig(n=8, beam_width=m, aggregation=a), tag=(m, a))
            for m in (2, 4) for a in ("last", "min")]
    memo = StepMemo()
    together, engine = run(jobs, memo, max_searches=4)
    first_steps = sum(1 for rows in engine.generate_calls for _ in range(rows))
    alone = {job.tag: run([job], StepMemo())[0][job.tag] for job in jobs}
    assert all(summary(together[t]) == summary(alone[t]) for t in alone)
    # 8 first steps drawn once for the four searches, and every later step at most once
    assert memo.stats.misses == len(memo) and memo.stats.misses < sum(len(r.tree) - 1 for r in alone.values())
    assert first_steps == memo.stats.misses
    assert not memo._pending
