"""Verifiers on the real llama.cpp path."""

import math

import numpy as np
import pytest

from tts_cli.engine import Engine, Sampling
from tts_cli.search import STRATEGIES, SearchConfig
from tts_cli.solver import open_policy, open_verifier, run_search
from tts_cli.verifiers import ConfidenceVerifier, JudgeVerifier, MathShepherdPRM, StepToScore

GREEDY_SAMPLING = Sampling(temperature=0.0)
PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = ["Tom starts with 3 apples.\n\n", "He buys 4 more, so 3 + 4 = 7.\n\n", "The answer is \\boxed{7}."]


KEY = (1, 0)  # (search key, stage)


def score_tree_incrementally(verifier):
    """Two paths that share their first two steps, scored step by step as a search would."""
    verifier.begin(KEY, PROBLEM)
    ids = iter(range(1, 100))
    a1 = next(ids)
    out = {}
    out[a1] = verifier.score([StepToScore(KEY, a1, 0, STEPS[0], [])])[0]
    a2 = next(ids)
    out[a2] = verifier.score([StepToScore(KEY, a2, a1, STEPS[1], [])])[0]
    a3, b3 = next(ids), next(ids)
    s = verifier.score([StepToScore(KEY, a3, a2, STEPS[2], []),
                        StepToScore(KEY, b3, a2, "So the answer is \\boxed{8}.", [])])
    out[a3], out[b3] = s
    return [out[a1], out[a2], out[a3]], out[b3]


@pytest.mark.parametrize("kind", ["judge", "math_shepherd"])
def test_incremental_scoring_equals_scoring_from_scratch(kind, smollm2, tiny_model):
    path = smollm2 if kind == "judge" else tiny_model
    with Engine(path, n_ctx=8192, n_seq_max=16, kv_unified=True, n_threads=2) as engine:
        verifier = JudgeVerifier(engine) if kind == "judge" else MathShepherdPRM(engine)
        incremental, other = score_tree_incrementally(verifier)
        used_incremental = engine.stats.tokens_evaluated
        verifier.close()
        before = engine.stats.tokens_evaluated
        scratch = verifier.score_from_scratch(PROBLEM, STEPS)
        scratch_other = verifier.score_from_scratch(PROBLEM, STEPS[:2] + ["So the answer is \\boxed{8}."])[-1]
        used_scratch = engine.stats.tokens_evaluated - before
    assert incremental == pytest.approx(scratch, abs=1e-4)
    assert other == pytest.approx(scratch_other, abs=1e-4)
    assert all(0.0 < s < 1.0 for s in incremental)
    assert used_incremental < used_scratch


def test_math_shepherd_reads_p_plus_at_each_step_tag(tiny_model):
    """Scores equal P(+)/(P(+)+P(-)) from logits that llama-cpp-python's own Llama computes
    over the whole text, read at the positions of the step tags."""
    from llama_cpp import Llama

    with Engine(tiny_model, n_ctx=2048, n_seq_max=8, kv_unified=True, n_threads=2) as engine:
        prm = MathShepherdPRM(engine)
        incremental, _ = score_tree_incrementally(prm)
        tokens = prm.tokens(prm.prefix(PROBLEM), first=True)
        for k in range(1, 4):
            tokens += prm.tokens(prm.delta(PROBLEM, STEPS[:k]), first=False)
        tag = engine.tokenize("ки")[-1]
        plus, minus = prm.good_id, prm.bad_id
    assert engine.model.pieces[plus].strip() == b"+" and engine.model.pieces[minus].strip() == b"-"
    # Small batches: the same CPU attention kernel as the engine's prefill (see Engine.prefill_chunk)
    llm = Llama(str(tiny_model), n_ctx=2048, n_batch=32, n_ubatch=32, flash_attn=True,
                logits_all=True, verbose=False)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)])
    positions = [i for i, t in enumerate(tokens) if t == tag]
    assert len(positions) == 3
    direct = [1.0 / (1.0 + math.exp(logits[p, minus] - logits[p, plus])) for p in positions]
    assert incremental == pytest.approx(direct, abs=1e-4)


def test_confidence_is_exp_mean_logprob():
    v = ConfidenceVerifier()
    v.begin(KEY, "p")
    s = v.score([StepToScore(KEY, 1, 0, "x", [-0.1, -0.3]), StepToScore(KEY, 2, 1, "", [])])
    assert s[0] == pytest.approx(math.exp(-0.2))
    assert s[1] == s[0]  # an empty final step keeps its parent's score


@pytest.mark.parametrize("prm", ["judge", "confidence"])
def test_every_strategy_end_to_end_on_smollm2(prm, smollm2):
    config = SearchConfig(n=4, beam_width=2, max_steps=4, max_step_tokens=48, seed=1)
    policy = open_policy(smollm2, config, n_threads=2, context_per_path=1024)
    verifier = open_verifier(prm, policy, config, n_threads=2, context_per_path=1024)
    problem = "What is 12 + 30?"
    for name in STRATEGIES:
        result = run_search(name, problem, policy, verifier, config)
        assert result.candidates, name
        for c in result.candidates:  # each path ended for the reason it gives, and no context ran out
            assert c.finish_reason in ("eos", "boxed", "length", "max_steps"), (name, c.finish_reason)
            if c.finish_reason == "boxed":
                assert "\\boxed{" in c.steps[-1]
            if c.finish_reason == "max_steps":
                assert len(c.steps) == config.max_steps
            if c.finish_reason == "length":
                assert result.tree[c.node_id].tokens == config.max_step_tokens
        if name in ("best-of-n", "beam", "dvts"):
            assert all(0.0 <= s <= 1.0 for c in result.candidates for s in c.step_scores)
            assert all(c.score is not None for c in result.candidates)
        assert result.compute["policy"]["tokens_generated"] > 0
        assert result.compute["flops"] > 0
        if prm == "judge" and name in ("best-of-n", "beam", "dvts"):
            assert result.compute["verifier"]["tokens_evaluated"] > 0
        assert len(result.tree) > 1 and result.tree[0].state == "root"
        assert policy.free_slots == policy.n_seq_max  # every sequence released
        if name == "cot":
            assert len(result.candidates) == 1
        if name in ("majority", "best-of-n"):
            assert len(result.candidates) == config.n
    verifier.close()
    policy.close()


def random_head(kind, hidden, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "value_head":
        return {"weight": rng.standard_normal(hidden).astype(np.float32) * 0.3, "bias": np.array([0.1], np.float32)}
    return {"w1": rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.2,
            "b1": np.zeros(hidden, np.float32),
            "w2": rng.standard_normal((2, hidden)).astype(np.float32) * 0.2, "b2": np.zeros(2, np.float32)}


def hidden_state_by_llama_cpp(path, tokens):
    """The final hidden state at the last of `tokens`, read with llama-cpp-python's low-level API
    in a context of its own (embeddings on, no pooling)."""
    import llama_cpp as L
    model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
    p = L.llama_context_default_params()
    p.n_ctx, p.n_batch, p.n_ubatch, p.n_threads, p.n_threads_batch = 1024, 32, 32, 2, 2
    p.embeddings, p.pooling_type = True, L.LLAMA_POOLING_TYPE_NONE
    ctx = L.llama_init_from_model(model, p)
    try:
        for i in range(0, len(tokens), 32):
            chunk = tokens[i:i + 32]
            batch = L.llama_batch_init(len(chunk), 0, 1)
            for j, t in enumerate(chunk):
                batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = t, i + j, 1, True
                batch.seq_id[j][0] = 0
            batch.n_tokens = len(chunk)
            assert L.llama_decode(ctx, batch) == 0
            L.llama_batch_free(batch)
        n_embd = L.llama_model_n_embd(model)
        return np.array(L.llama_get_embeddings_ith(ctx, len(chunk) - 1)[:n_embd], dtype=np.float64)
    finally:
        L.llama_free(ctx)
        L.llama_model_free(model)


@pytest.mark.parametrize("kind", ["value_head", "classification_head"])
def test_head_prms_score_incrementally_like_from_scratch(kind, tiny_model, tmp_path):
    from tts_cli.verifiers import HEAD_FORMATS, load_head, verifier_from_format

    with Engine(tiny_model, n_ctx=4096, n_seq_max=16, kv_unified=True, n_threads=2, embeddings=True) as engine:
        np.savez(tmp_path / "head.npz", **random_head(kind, engine.model.n_embd))
        prm = verifier_from_format({"format": kind, "head_file": "head.npz"}, engine, name=kind, head_dir=tmp_path)
        assert isinstance(prm, HEAD_FORMATS[kind])
        incremental, other = score_tree_incrementally(prm)
        prm.close()
        scratch = prm.score_from_scratch(PROBLEM, STEPS)
        tokens = prm._path_tokens(PROBLEM, STEPS)
    # the score is the head, computed here in numpy, on the hidden state at the step's last token
    # as llama.cpp returns it through llama-cpp-python's own API (not the engine's)
    hidden = hidden_state_by_llama_cpp(tiny_model, tokens)
    head = random_head(kind, len(hidden))
    if kind == "value_head":
        expected = 1.0 / (1.0 + math.exp(-(float(hidden @ head["weight"]) + float(head["bias"][0]))))
    else:
        logits = np.maximum(hidden @ head["w1"].T + head["b1"], 0.0) @ head["w2"].T + head["b2"]
        expected = float(np.exp(logits[1]) / np.exp(logits).sum())
    assert scratch[-1] == pytest.approx(expected, abs=1e-4)
    assert incremental == pytest.approx(scratch, abs=1e-4)
    assert len(set(round(s, 6) for s in incremental + [other])) == 4  # the head sees different states
    with pytest.raises(Exception, match="lacks"):
        np.savez(tmp_path / "bad.npz", nothing=np.zeros(3))
        load_head(tmp_path / "bad.npz", kind)
