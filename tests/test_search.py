"""The search strategies, pinned on a scripted fake engine and verifier."""

import random

import pytest

from fake_engine import FakeEngine, ScoreInTextVerifier
from tts_cli.search import STRATEGIES, ConfigError, SearchConfig, run_search
from tts_cli.search.common import aggregate


def search(strategy, engine, verifier, config, on_event=None, problem="p"):
    return run_search(strategy, problem, engine, verifier, config, on_event)


def beam(problem, engine, verifier, config):
    return search("beam", engine, verifier, config, problem=problem)


def best_of_n(problem, engine, verifier, config):
    return search("best-of-n", engine, verifier, config, problem=problem)


def dvts(problem, engine, verifier, config):
    return search("dvts", engine, verifier, config, problem=problem)


def majority(problem, engine, verifier, config):
    return search("majority", engine, verifier, config, problem=problem)


def cot(problem, engine, verifier, config):
    return search("cot", engine, verifier, config, problem=problem)


def random_scores_script(finish_depth=4, seed=0):
    """Every step gets a pseudo-random score derived from the path; paths end at finish_depth
    with a boxed answer."""
    def script(steps, branch):
        rng = random.Random(hash((tuple(steps), branch, seed)))
        score = round(rng.random(), 4)
        depth = len(steps) + 1
        if depth >= finish_depth:
            return f"so \\boxed{{{rng.randint(1, 3)}}} |{score}", "eos"
        return f"step {depth}.{branch} |{score}\n\n", "stop"
    return script


def test_beam_keeps_top_n_over_m_and_expands_each_survivor_m_ways():
    n, m = 8, 2
    engine = FakeEngine(random_scores_script(finish_depth=5))
    result = beam("p", engine, ScoreInTextVerifier(), SearchConfig(n=n, beam_width=m, aggregation="last"))
    tree = result.tree
    by_depth = {}
    for node in tree[1:]:
        by_depth.setdefault(node.depth, []).append(node)
    assert len(by_depth[1]) == n
    for depth in range(1, max(by_depth)):
        open_nodes = [x for x in by_depth[depth] if x.state != "finished"]
        survivors = [x for x in open_nodes if x.state != "pruned"]
        expected = sorted(open_nodes, key=lambda x: x.score, reverse=True)[: n // m]
        assert {x.id for x in survivors} == {x.id for x in expected}
        children = by_depth.get(depth + 1, [])
        for s in survivors:
            assert sum(1 for c in children if c.parent == s.id) == m
        assert all(c.parent in {s.id for s in survivors} for c in children)
    assert all(c.finish_reason in ("eos", "boxed") for c in result.candidates)
    assert not engine.live  # every sequence released


def test_beam_requires_n_multiple_of_beam_width():
    with pytest.raises(ConfigError, match="multiple"):
        beam("p", FakeEngine(random_scores_script()), ScoreInTextVerifier(), SearchConfig(n=6, beam_width=4))


def test_beam_generates_all_candidates_in_one_batch_per_iteration():
    engine = FakeEngine(random_scores_script(finish_depth=4))
    beam("p", engine, ScoreInTextVerifier(), SearchConfig(n=8, beam_width=2))
    # every iteration steps all N paths in one request: 8 paths at each of the 4 depths
    assert engine.generate_calls == [8, 8, 8, 8]


def test_dvts_subtrees_never_exchange_and_return_only_finished_paths():
    n, m = 8, 2
    engine = FakeEngine(random_scores_script(finish_depth=5, seed=3))
    result = dvts("p", engine, ScoreInTextVerifier(), SearchConfig(n=n, beam_width=m))
    tree = result.tree
    depth1 = [x for x in tree if x.depth == 1]
    groups = [depth1[i:i + m] for i in range(0, len(depth1), m)]  # spread order: one group per subtree
    assert len(groups) == n // m
    depth = 1
    while True:
        chosen = []
        for g in groups:
            best = max(g, key=lambda x: x.score)
            if best.state != "finished":
                chosen.append(best)
        nxt = [x for x in tree if x.depth == depth + 1]
        if not nxt:
            assert not chosen
            break
        parents = {x.parent for x in nxt}
        assert parents == {b.id for b in chosen}  # only each subtree's own best is extended
        groups = [[x for x in nxt if x.parent == p.id] for p in chosen]
        assert all(len(g) == m for g in groups)
        depth += 1
    assert result.candidates and all(tree[c.node_id].state == "finished" for c in result.candidates)
    assert all(c.finish_reason in ("eos", "boxed", "max_steps") for c in result.candidates)
    assert not engine.live


def _answers_script(paths):
    """paths[i] = (answer, score) for the i-th sampled path; one step each."""
    def script(steps, branch):
        answer, score = paths[branch]
        return f"The answer is \\boxed{{{answer}}} |{score}", "eos"
    return script


def test_prm_vote_and_prm_max_pick_different_answers():
    script = _answers_script([("7", 0.9), ("5", 0.6), ("5", 0.6)])
    vote = best_of_n("p", FakeEngine(script), ScoreInTextVerifier(), SearchConfig(n=3, selection="vote"))
    best = best_of_n("p", FakeEngine(script), ScoreInTextVerifier(), SearchConfig(n=3, selection="max"))
    assert vote.answer == "5" and vote.votes["5"]["score"] == pytest.approx(1.2)
    assert best.answer == "7"


def test_majority_groups_equivalent_answers():
    script = _answers_script([("3", 0), ("\\frac12", 0), ("0.5", 0), ("3", 0), ("\\dfrac{1}{2}", 0)])
    result = majority("p", FakeEngine(script), None, SearchConfig(n=5))
    # the group is named by the first spelling that finished; paths finish in any order
    assert result.answer in ("\\frac12", "0.5", "\\dfrac{1}{2}")
    assert result.votes[result.answer]["count"] == 3 and result.votes["3"]["count"] == 2


@pytest.mark.parametrize("how,expected", [("last", 0.5), ("min", 0.2), ("avg", (0.9 + 0.2 + 0.5) / 3), ("prod", 0.9 * 0.2 * 0.5)])
def test_step_score_aggregation(how, expected):
    assert aggregate([0.9, 0.2, 0.5], how) == pytest.approx(expected)


def test_aggregation_changes_best_of_n_choice():
    # path A scores 0.9 then 0.3; path B 0.5 then 0.5
    def script(steps, branch):
        scores = [(0.9, 0.3), (0.5, 0.5)][branch]
        if not steps:
            return f"first |{scores[0]}\n\n", "stop"
        return f"\\boxed{{{'A' if branch == 0 else 'B'}}} |{scores[1]}", "eos"

    def answer(how):
        return best_of_n("p", FakeEngine(script_by_seq(script)), ScoreInTextVerifier(),
                         SearchConfig(n=2, selection="max", aggregation=how)).answer
    assert answer("last") == "B"  # 0.5 > 0.3
    assert answer("min") == "B"  # 0.5 > 0.3
    assert answer("avg") == "A"  # 0.6 > 0.5
    assert answer("prod") == "A"  # 0.27 > 0.25


def script_by_seq(script):
    """Remember each sequence's branch from its first step (branch resets to 0 after a step)."""
    first_branch = {}

    def wrapped(steps, branch):
        key = steps[0] if steps else None
        if key is None:
            text, reason = script(steps, branch)
            first_branch[text] = branch
            return text, reason
        return script(steps, first_branch[key])
    return wrapped


def test_cot_is_one_greedy_path_to_the_end():
    def script(steps, branch):
        return (f"step {len(steps)}\n\n", "stop") if len(steps) < 3 else ("\\boxed{42}", "eos")
    result = cot("p", FakeEngine(script), None, SearchConfig())
    assert result.answer == "42"
    assert len(result.candidates) == 1 and len(result.candidates[0].steps) == 4


def test_step_limit_finishes_paths():
    def script(steps, branch):
        return "more\n\n", "stop"
    result = majority("p", FakeEngine(script), None, SearchConfig(n=2, max_steps=5))
    assert [c.finish_reason for c in result.candidates] == ["max_steps", "max_steps"]
    assert all(len(c.steps) == 5 for c in result.candidates)
    assert result.answer is None


def test_every_strategy_emits_events_and_reports_tree():
    for name, fn in STRATEGIES.items():
        events = []
        result = search(name, FakeEngine(random_scores_script(finish_depth=3)), ScoreInTextVerifier(),
                        SearchConfig(n=4, beam_width=2), on_event=events.append)
        kinds = {e.kind for e in events}
        assert "expand" in kinds and "finish" in kinds, name
        assert result.strategy == name.replace("-", "_") or result.strategy == name
        assert result.tree[0].state == "root"
        d = result.as_dict()
        assert set(d) >= {"answer", "strategy", "config", "candidates", "tree", "compute"}
