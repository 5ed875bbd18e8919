"""The engine on the real llama.cpp path: a tiny random GGUF and SmolLM2-135M-Instruct."""

import pytest

from tts_cli.engine import Engine, EngineError, Sampling, kv_cells_needed
from tts_cli.engine.chat import render_chat

GREEDY = Sampling(temperature=0.0)
PROMPTS_TINY = ["the answer is 42", "Yes or No? 7 + 8", "abc def ghi", "1 2 3 4 5 6 7"]
QUESTIONS = ["What is 15 + 27?", "Name a colour.", "What is the capital of France?", "Count to five."]


def smollm2_prompts(engine):
    return [render_chat(engine.model, [{"role": "user", "content": q}]) for q in QUESTIONS]


def generate_alone(engine, prompt, n_tokens):
    seq = engine.start(prompt, GREEDY)
    step = engine.generate([seq], stop=(), max_tokens=n_tokens)[0]
    engine.release(seq)
    return step.tokens


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_batched_greedy_equals_each_alone(which, tiny_model, smollm2):
    path, n_tokens = (tiny_model, 24) if which == "tiny" else (smollm2, 16)
    with Engine(path, n_ctx=2048, n_seq_max=8, n_threads=2) as engine:
        prompts = PROMPTS_TINY if which == "tiny" else smollm2_prompts(engine)
        alone = [generate_alone(engine, p, n_tokens) for p in prompts]
        seqs = [engine.start(p, GREEDY) for p in prompts]
        calls_before = engine.stats.decode_calls
        steps = engine.generate(seqs, stop=(), max_tokens=n_tokens)
        together = [s.tokens for s in steps]
        # one llama_decode per token position for all sequences, not one per sequence
        assert engine.stats.decode_calls - calls_before == n_tokens
    assert together == alone
    assert all(len(t) == n_tokens for t in together) or which == "smollm2"


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_fork_then_greedy_equals_fresh_sequence_with_same_prefix(which, tiny_model, smollm2):
    path = tiny_model if which == "tiny" else smollm2
    with Engine(path, n_ctx=2048, n_seq_max=8, n_threads=2) as engine:
        prompt = PROMPTS_TINY[0] if which == "tiny" else smollm2_prompts(engine)[0]
        root = engine.start(prompt, GREEDY)
        first = engine.generate([root], stop=(), max_tokens=7)[0]  # fork point p = prompt + 7
        prefix = list(root.tokens)
        child = engine.fork(root, 1)[0]
        engine.release(root)  # the child keeps the shared cells alive
        continued = engine.generate([child], stop=(), max_tokens=12)[0].tokens

        fresh = engine.start(prefix, GREEDY)
        expected = engine.generate([fresh], stop=(), max_tokens=12)[0].tokens
    assert len(first.tokens) == 7
    assert continued == expected


def test_forked_group_prefills_prompt_once(tiny_model):
    n = 16
    with Engine(tiny_model, n_ctx=4096, n_seq_max=n + 1, n_threads=2) as engine:
        prompt = engine.tokenize("the answer is " * 20, add_special=True)
        root = engine.start(prompt, Sampling(seed=1))
        children = engine.fork(root, n)
        steps = engine.generate(children, stop=(), max_tokens=8)
        stats = engine.stats
    # Everything but the last prompt token is prefilled once; each child evaluates that last
    # token as the input of its first generation step.
    assert stats.tokens_prefilled == len(prompt) - 1
    assert stats.tokens_generated == sum(len(s.tokens) for s in steps) == n * 8
    assert stats.tokens_evaluated == stats.tokens_prefilled + n * 8
    prefill_calls = -(-(len(prompt) - 1) // engine.prefill_chunk)
    assert stats.decode_calls == prefill_calls + 8
    assert stats.flops == 2 * stats.n_params * stats.tokens_evaluated


def test_thousand_fork_release_cycles_reuse_slots(tiny_model):
    with Engine(tiny_model, n_ctx=1024, n_seq_max=16, n_threads=2) as engine:
        root = engine.start("the answer is", GREEDY)
        expected = None
        for i in range(1000):
            kids = engine.fork(root, 3 if i % 2 else 15)
            if i % 100 == 0:
                steps = engine.generate(kids, stop=(), max_tokens=2)
                expected = expected or steps[0].tokens
                assert all(s.tokens == expected for s in steps)
            engine.release_all(kids)
            if i % 100 == 1:  # a released slot holds nothing: its KV cells are gone
                assert all(engine.ctx.seq_pos_max(k.slot) == -1 for k in kids)
        assert engine.free_slots == 15
        # the cache holds no leftovers from released children
        assert engine.generate(engine.fork(root, 1), stop=(), max_tokens=2)[0].tokens == expected


def test_exhausting_the_context_ends_sequences_with_reason_context(tiny_model):
    with Engine(tiny_model, n_ctx=256, n_seq_max=4, n_threads=2) as engine:
        root = engine.start("the answer is", Sampling(seed=3, ban_eos=True))
        kids = engine.fork(root, 3)
        steps = engine.generate(kids, stop=(), max_tokens=1000)
        assert {s.stop_reason for s in steps} == {"context"}
        assert all(len(s.tokens) > 0 for s in steps)
        # ended sequences stay ended, and say why
        again = engine.generate(kids, stop=(), max_tokens=5)
        assert [s.stop_reason for s in again] == ["context"] * 3
        assert all(s.tokens == [] for s in again)
        # a sequence whose own positions run out also ends with "context"
        engine.release_all(kids)
        long = engine.start(list(range(300, 350)) * 4, Sampling(seed=1, ban_eos=True))
        step = engine.generate([long], stop=(), max_tokens=1000)[0]
        assert step.stop_reason == "context"


def test_prompt_longer_than_context_is_a_clear_error(tiny_model):
    with Engine(tiny_model, n_ctx=64, n_seq_max=1, n_threads=2) as engine:
        with pytest.raises(EngineError, match="does not fit"):
            engine.start(list(range(300, 350)) * 6)


def test_same_seed_same_text_different_seed_different_text(smollm2):
    def sample(seed):
        with Engine(smollm2, n_ctx=2048, n_seq_max=4, n_threads=2) as engine:
            prompt = smollm2_prompts(engine)[1]
            seq = engine.start(prompt, Sampling(temperature=1.0, seed=seed))
            kids = engine.fork(seq, 2)  # children derive their seeds from the parent's
            return [s.text for s in engine.generate([seq] + kids, stop=(), max_tokens=24)]

    a, b, c = sample(1), sample(1), sample(2)
    assert a == b
    assert a != c
    assert len(set(a)) == 3  # the three sequences of one run differ from each other


def test_step_stops_at_stop_string_and_steps_concatenate(smollm2):
    with Engine(smollm2, n_ctx=2048, n_seq_max=2, n_threads=2) as engine:
        prompt = render_chat(engine.model, [{"role": "user", "content":
                             "Solve step by step, one short paragraph per step: what is 15 + 27?"}])
        seq = engine.start(prompt, GREEDY)
        start = len(seq.tokens)
        texts = []
        reasons = []
        for _ in range(4):
            step = engine.generate([seq], stop=["\n\n"], max_tokens=80)[0]
            texts.append(step.text)
            reasons.append(step.stop_reason)
            assert step.stop_reason in ("stop", "eos", "length")
            if step.stop_reason == "stop":
                assert step.text.endswith("\n\n") and "\n\n" not in step.text[:-2]
            if step.stop_reason == "length":
                assert len(step.tokens) == 80
            assert len(step.logprobs) == len(step.tokens)
            assert all(lp <= 0.0 for lp in step.logprobs)
            if step.stop_reason == "eos":
                break
        assert "".join(texts) == engine.text(seq, start)
    assert reasons[0] == "stop"  # the prompt asks for paragraphs: the first step ends at one


def test_extend_appends_text_in_one_batch(tiny_model):
    with Engine(tiny_model, n_ctx=1024, n_seq_max=4, n_threads=2) as engine:
        a = engine.start("the answer", GREEDY)
        b = engine.start("Yes or No", GREEDY)
        calls = engine.stats.decode_calls
        engine.extend([(a, " is 42"), (b, " 7 + 8")])
        assert engine.stats.decode_calls == calls + 1
        via_extend = engine.generate([a, b], stop=(), max_tokens=6)
        direct = [generate_alone(engine, engine.tokenize("the answer", add_special=True) + engine.tokenize(" is 42"), 6),
                  generate_alone(engine, engine.tokenize("Yes or No", add_special=True) + engine.tokenize(" 7 + 8"), 6)]
    assert [s.tokens for s in via_extend] == direct


def test_kv_layouts_give_the_same_greedy_text(tiny_model):
    results = []
    for unified in (True, False):
        with Engine(tiny_model, n_ctx=kv_cells_needed(20, 4, 20, unified), n_seq_max=4,
                    kv_unified=unified, n_threads=2) as engine:
            root = engine.start("the answer is", GREEDY)
            results.append([s.tokens for s in engine.generate(engine.fork(root, 3), stop=(), max_tokens=10)])
    assert results[0] == results[1]


@pytest.mark.parametrize("content,expected", [
    (None, "does not exist"),
    (b"not a gguf at all", "not a GGUF file"),
    ("truncated", "could not load"),
])
def test_bad_model_files_raise_engine_error_naming_the_path(tmp_path, tiny_model, content, expected):
    path = tmp_path / "model.gguf"
    if content == "truncated":
        path.write_bytes(tiny_model.read_bytes()[:2000])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(EngineError, match=expected) as info:
        Engine(path, n_ctx=256, n_seq_max=1)
    assert str(path) in str(info.value)


def test_chat_template_and_plain_fallback(smollm2, tiny_model):
    with Engine(smollm2, n_ctx=512, n_seq_max=1) as engine:
        text = render_chat(engine.model, [{"role": "user", "content": "Hi"}], assistant_prefix="Step 1:")
        assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nStep 1:")
        tokens = engine.tokenize(text, add_special=True)
        assert engine.model.tokenize("<|im_start|>")[0] in tokens  # special tokens are parsed
    with Engine(tiny_model, n_ctx=512, n_seq_max=1) as engine:
        assert engine.model.chat_template is None
        assert render_chat(engine.model, [{"role": "user", "content": "2+2?"}]) == "Question: 2+2?\nAnswer:"


def test_prompt_cache_prefills_a_repeated_prompt_once(tiny_model):
    with Engine(tiny_model, n_ctx=2048, n_seq_max=4, n_threads=2) as engine:
        a = engine.start("the answer is 42", GREEDY, cache=True)
        prefilled = engine.stats.tokens_prefilled
        first = engine.generate([a], stop=(), max_tokens=8)[0].tokens
        engine.release(a)
        b = engine.start("the answer is 42", GREEDY, cache=True)  # forked from the cached copy
        assert engine.stats.tokens_prefilled == prefilled
        assert engine.generate([b], stop=(), max_tokens=8)[0].tokens == first
        engine.release(b)
        c = engine.start("Yes or No", GREEDY, cache=True)  # another prompt replaces the cache
        assert engine.stats.tokens_prefilled > prefilled
        # the cached copy gives its slot way when live sequences need every slot
        kids = engine.fork(c, 3)
        assert engine.free_slots == 0 and len(kids) == 3


def test_one_context_limit_for_prompts_extensions_and_tokens(tiny_model):
    """The prompt check, extend and generation agree on where a sequence's context ends: a
    prompt of n_ctx_seq - 1 tokens starts and takes exactly one token; one of n_ctx_seq does
    not start; an extension that would leave no room ends the sequence with "context"."""
    with Engine(tiny_model, n_ctx=64, n_seq_max=1, n_threads=2) as engine:
        n = engine.ctx.n_ctx_seq
        with pytest.raises(EngineError, match="does not fit"):
            engine.start([300 + i % 50 for i in range(n)])
        seq = engine.start([300 + i % 50 for i in range(n - 1)], Sampling(seed=1, ban_eos=True))
        step = engine.generate([seq], stop=(), max_tokens=10)[0]
        assert len(step.tokens) == 1 and step.stop_reason == "context"
        engine.release(seq)
        seq = engine.start([300 + i % 50 for i in range(n - 3)], Sampling(seed=1, ban_eos=True))
        engine.extend([(seq, [301, 302, 303, 304])])  # 3 would fit, leaving one cell
        assert seq.ended == "context"


def test_ctrl_c_inside_a_llama_cpp_log_callback_is_not_lost(tiny_model):
    """llama.cpp logs through a Python callback on every graph it builds; a KeyboardInterrupt
    raised inside it would be swallowed by ctypes (seen: a Ctrl-C'd grade ran to the end). It is
    deferred to the end of the C call instead; so is SIGTERM, which stops a run the same way."""
    import signal

    from tts_cli.engine import Model, Terminated, llamacpp
    Model(tiny_model).close()  # the backend is initialised, the handler installed
    assert signal.getsignal(signal.SIGINT) is llamacpp._on_signal

    class InsideTheCallback:
        f_code = llamacpp._log_to_stderr.__code__

    llamacpp._on_signal(signal.SIGINT, InsideTheCallback())  # no raise inside the callback...
    with pytest.raises(KeyboardInterrupt):
        llamacpp.check_interrupt()  # ...but right after the C call returns
    llamacpp.check_interrupt()  # once
    with pytest.raises(KeyboardInterrupt):
        llamacpp._on_signal(signal.SIGINT, None)  # anywhere else: at once, as Python's own handler
    llamacpp._on_signal(signal.SIGTERM, InsideTheCallback())
    with pytest.raises(Terminated):
        llamacpp.check_interrupt()


@pytest.mark.slow
def test_a_sampled_path_never_ends_with_no_text(smollm2, monkeypatch):
    """A path whose first token is end-of-generation is a candidate that buys nothing (a quarter
    of SmolLM2's few-shot samples once were). Search paths ban it for their first token."""
    import json
    from dataclasses import replace
    from pathlib import Path

    import tts_cli.search.common as common
    from tts_cli.search import Job, SearchConfig
    from tts_cli.settings import ModelSettings
    from tts_cli.solver import Session
    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "benchmarks/data/arith-test.jsonl").open()]
    problems = [rows[0]["problem"], rows[3]["problem"]]  # both gave empty paths without the ban
    cfg = SearchConfig(n=8, max_steps=2, max_step_tokens=16, prompt="few-shot")
    session = Session(ModelSettings(policy=str(smollm2), threads=2))
    scheduler = session.open([("majority", cfg)], concurrency=2)

    def empty_candidates():
        results = list(scheduler.run([Job(p, "majority", cfg) for p in problems]))
        return sum(1 for _, r in results for c in r.candidates if not c.text.strip())
    try:
        with_ban = empty_candidates()
        sampling = common.Run.sampling
        monkeypatch.setattr(common.Run, "sampling", lambda self, greedy=False: replace(sampling(self, greedy),
                                                                                    min_tokens=0))
        without_ban = empty_candidates()
    finally:
        session.close(scheduler)
    assert with_ban == 0 and without_ban > 0
