"""A value head read from the policy's own decode (issue 20): the hidden state each generation
row already computes, kept beside sampling, against a second context re-reading the same tokens."""

import json
import shutil

import numpy as np
import pytest

from cli_helpers import FAST, one_line_error, tts
from tts_cli.engine import Engine, Model, Sampling
from tts_cli.search import SearchConfig
from tts_cli.solver import open_policy, run_search
from tts_cli.verifiers import PolicyHeadPRM
from tts_cli.verifiers.reread import RereadHead, recording_reads

# Measured on the tiny model (|h| up to 3): against a reader like the policy's (split KV, plain
# attention) the states differ by at most 1.2e-4: the same products summed in other orders (matrix
# kernels tile by the rows in a decode, prefill goes in chunks). Against the two-context head's
# reader (unified KV, CPU flash attention, which rounds Q and K/V to F16) by 2.8e-3, cosine
# above 0.999999. Bounds with room, far below what moves a head's score.
TOLERANCE = {False: (5e-4, 0.9999999), True: (1e-2, 0.99999)}  # reader's kv_unified -> (max abs, min cosine)


def reread(model, tokens, kv_unified):
    """The final hidden state at the last of `tokens`, read from scratch in a second context."""
    with Engine(model, n_ctx=1024, n_seq_max=2, kv_unified=kv_unified, n_threads=2, embeddings=True) as reader:
        seq = reader.start(tokens, Sampling(temperature=0.0))
        return reader.hidden_states([seq])[0]


def policy_step_ends(tiny_model, hidden=True, steps=3):
    """Four sampled paths of a few steps; (tokens read, hidden state) at every step end."""
    ends = []
    with Engine(tiny_model, n_ctx=4096, n_seq_max=8, kv_unified=False, n_threads=2, hidden=hidden,
                seed=1) as engine:
        root = engine.start("the answer is", Sampling(temperature=0.9, seed=7))
        seqs = [root] + engine.fork(root, 3)
        for _ in range(steps):
            for seq, st in zip(seqs, engine.generate(seqs, stop=("\n",), max_tokens=12)):
                if st.tokens or st.stop_reason == "eos":
                    ends.append((list(seq.tokens[:seq.hidden_at]), st.hidden, st.tokens))
        return ends


@pytest.mark.parametrize("kv_unified", [False, True])
def test_the_policy_keeps_each_step_ends_hidden_state_equal_to_a_second_read(tiny_model, kv_unified):
    ends = policy_step_ends(tiny_model)
    assert len(ends) >= 8
    worst, least = 0.0, 1.0
    for tokens, hidden, _ in ends:
        assert hidden is not None and hidden.shape == (64,) and hidden.dtype == np.float32
        again = reread(tiny_model, tokens, kv_unified)
        worst = max(worst, float(np.abs(hidden - again).max()))
        least = min(least, float(hidden @ again / np.linalg.norm(hidden) / np.linalg.norm(again)))
    print(f"max abs diff {worst:.2e}, min cosine {least:.8f}, max |h| {max(float(np.abs(h).max()) for _, h, _ in ends):.2f}")
    atol, min_cosine = TOLERANCE[kv_unified]
    assert worst <= atol and least >= min_cosine


def test_hidden_states_leave_the_samples_as_they_were(tiny_model):
    with_hidden = [t for _, _, t in policy_step_ends(tiny_model, hidden=True)]
    without = [t for _, _, t in policy_step_ends(tiny_model, hidden=False)]
    assert with_hidden == without
    assert all(h is None for _, h, _ in policy_step_ends(tiny_model, hidden=False, steps=1))


# --- the policy_head verifier ----------------------------------------------------------------------

def value_head(n_embd, seed=0):
    rng = np.random.default_rng(seed)
    return {"weight": (rng.standard_normal(n_embd) * 0.3).astype(np.float32), "bias": np.array([0.1], np.float32)}


@pytest.fixture
def record_reads():
    """(search key, node id) -> the tokens its step's hidden state was computed from."""
    with recording_reads() as reads:
        yield reads


PROBLEMS = ["What is 2 + 3?", "What is 7 + 8?", "the answer is", "Count to five."]


def test_best_of_n_with_the_policy_head_chooses_as_the_two_context_head_does(tiny_model, record_reads):
    config = SearchConfig(n=4, max_steps=3, max_step_tokens=8, seed=3, selection="max")
    policy = open_policy(tiny_model, config, n_threads=2, context_per_path=512, hidden=True)
    head = value_head(policy.model.n_embd)
    mine, two = PolicyHeadPRM(head, name="policy", n_embd=policy.model.n_embd), RereadHead(tiny_model, head, record_reads, kv_unified=True, n_threads=2)
    worst = 0.0
    try:
        for problem in PROBLEMS:
            a, b = (run_search("best-of-n", problem, policy, v, config) for v in (mine, two))
            assert a.answer == b.answer and [c.steps for c in a.candidates] == [c.steps for c in b.candidates]
            for ca, cb in zip(a.candidates, b.candidates):
                worst = max([worst] + [abs(x - y) for x, y in zip(ca.step_scores, cb.step_scores)])
            assert a.compute["verifier"]["flops"] == 2 * (policy.model.n_embd + 1) * a.compute["verifier"]["tokens_evaluated"]
    finally:
        two.close()
        policy.close()
    print(f"max score difference {worst:.2e}")
    assert worst < 2e-3


@pytest.mark.parametrize("strategy", ["beam", "dvts", "particle-filter", "best-of-n-adaptive"])
def test_every_scoring_strategy_runs_on_the_policy_head(tiny_model, strategy):
    config = SearchConfig(n=4, beam_width=2, max_steps=3, max_step_tokens=8, seed=1, lookahead=1)
    policy = open_policy(tiny_model, config, strategy=strategy, n_threads=2, context_per_path=512, hidden=True)
    verifier = PolicyHeadPRM(value_head(policy.model.n_embd), name="policy", n_embd=policy.model.n_embd)
    try:
        result = run_search(strategy, "What is 2 + 3?", policy, verifier, config)
    finally:
        policy.close()
    scores = [s for c in result.candidates for s in c.step_scores]
    assert scores and all(0.0 < s < 1.0 for s in scores)
    assert result.compute["verifier"]["tokens_evaluated"] >= len(scores)


def policy_head_registry(tiny_model, tmp_path):
    np.savez(tmp_path / "head.npz", **value_head(Model(tiny_model).n_embd))
    reg = tmp_path / "models.yaml"
    reg.write_text(f"models:\n  - name: tiny-policy-head\n    role: prm\n    params: 65\n    path: {tiny_model}\n"
                   f"    prm: {{format: policy_head, head_file: {tmp_path / 'head.npz'}}}\n")
    return reg


def test_a_policy_head_costs_two_flops_per_head_parameter_a_step(tiny_model, tmp_path):
    reg = policy_head_registry(tiny_model, tmp_path)
    common = ["--policy", tiny_model, "--models-file", reg, "--n", "4", "--seed", "2", "--json", *FAST]
    r = tts("solve", "What is 2 + 2?", "--prm", "tiny-policy-head", "--strategy", "best-of-n", *common)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    steps = sum(len(c["step_scores"]) for c in d["candidates"])
    assert d["verifier"] == "tiny-policy-head" and steps > 0
    assert d["compute"]["verifier"]["flops"] == 2 * 65 * steps
    majority = json.loads(tts("solve", "What is 2 + 2?", "--strategy", "majority", *common).stdout)
    assert [c["steps"] for c in majority["candidates"]] == [c["steps"] for c in d["candidates"]]
    assert majority["compute"]["flops"] <= d["compute"]["flops"] <= 1.05 * majority["compute"]["flops"]

    other = tmp_path / "other.gguf"
    shutil.copy(tiny_model, other)
    one_line_error(tts("solve", "What is 2 + 2?", "--prm", "tiny-policy-head", "--strategy", "best-of-n",
                       *common[:1], other, *common[2:]), "a policy head reads the hidden states of")


def test_a_policy_head_cannot_rescore_stored_steps(tiny_model, tmp_path):
    reg = policy_head_registry(tiny_model, tmp_path)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "What is 1 + 2?", "answer": "#### 3"}) + "\n")
    out = tmp_path / "maj.jsonl"
    assert tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "majority", "--n", "2",
               *FAST).exit_code == 0
    one_line_error(tts("rescore", out, "--prm", "tiny-policy-head", "--models-file", reg, "--out", tmp_path / "x.jsonl",
                       "--threads", "2"), "cannot score stored steps")
