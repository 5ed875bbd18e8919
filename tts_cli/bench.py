"""`tts bench`: the engine against a naive loop of llama-cpp-python's Llama.create_completion.

For each N, both generate N sequences of `tokens` tokens from one prompt with the same sampling
(temperature 0.7, no top-k/top-p, end of generation banned so every sequence has exactly
`tokens` tokens). The engine prefills the prompt once and forks it; the naive loop calls
create_completion N times (Llama reuses the common prefix of consecutive prompts, which is
counted as it happens). A third figure, `raw_decode_tok_s`, is llama_decode alone on the same
batch shape, without sampling or any Python around it: the ceiling the engine chases.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .engine import Engine, Model, Sampling, kv_cells_needed
from .engine.engine import choose_kv_unified
from .engine.chat import render_chat
from .engine.llamacpp import Context

BENCH_PROMPT = ("Solve the problem step by step and put the final answer in \\boxed{}.\n\n"
                "A farmer has 17 cows and buys 3 times as many sheep as cows. He then sells 12 "
                "sheep and buys 5 more cows. How many animals does the farmer have now?")
TEMPERATURE = 0.7


@dataclass
class BenchRow:
    n: int
    tokens: int
    kv: str
    prompt_tokens: int
    engine_tok_s: float  # end to end: prefill, fork and generation
    engine_gen_tok_s: float  # the generation steps alone (what raw_decode_tok_s bounds)
    engine_prefill_tokens: int
    engine_decode_calls: int
    engine_peak_rss_mb: float
    raw_decode_tok_s: float | None
    naive_tok_s: float | None
    naive_prefill_tokens: int | None
    naive_peak_rss_mb: float | None

    @property
    def speedup(self) -> float | None:
        return round(self.engine_tok_s / self.naive_tok_s, 2) if self.naive_tok_s else None

    @property
    def engine_vs_raw(self) -> float | None:
        return round(self.engine_gen_tok_s / self.raw_decode_tok_s, 3) if self.raw_decode_tok_s else None

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["speedup"] = self.speedup
        d["engine_vs_raw"] = self.engine_vs_raw
        return d


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 resets the high-water mark, so each row reports its own peak
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_engine(model: Model, prompt_tokens: list[int], n: int, tokens: int, *, unified: bool,
                 n_threads: int | None, seed: int = 0) -> tuple[float, float, Engine]:
    """Tokens/s of the engine (end to end, and generation alone): prompt prefilled once,
    forked into n, `tokens` steps batched."""
    n_ctx = kv_cells_needed(len(prompt_tokens), n, tokens + 1, unified=unified)
    engine = Engine(model, n_ctx=n_ctx, n_seq_max=n, kv_unified=unified, n_threads=n_threads)
    t0 = time.perf_counter()
    root = engine.start(prompt_tokens, Sampling(temperature=TEMPERATURE, seed=seed, ban_eos=True))
    children = [root] + engine.fork(root, n - 1)
    engine.ctx.synchronize()
    t1 = time.perf_counter()
    steps = engine.generate(children, stop=(), max_tokens=tokens)
    engine.ctx.synchronize()
    t2 = time.perf_counter()
    generated = sum(len(s.tokens) for s in steps)
    return generated / (t2 - t0), generated / (t2 - t1), engine


def bench_raw_decode(model: Model, prompt_tokens: list[int], n: int, tokens: int, *, unified: bool,
                     n_threads: int | None) -> float:
    """llama_decode alone: the same batches (n tokens, one per sequence, logits out), no
    sampling, no Python per sequence."""
    n_ctx = kv_cells_needed(len(prompt_tokens), n, tokens + 1, unified=unified)
    ctx = Context(model, n_ctx=n_ctx, n_seq_max=n, kv_unified=unified, n_threads=n_threads)
    try:
        p = len(prompt_tokens)
        for i in range(0, p, ctx.n_batch):
            chunk = prompt_tokens[i:i + ctx.n_batch]
            ctx.decode(chunk, list(range(i, i + len(chunk))), [0] * len(chunk), outputs=False)
        for s in range(1, n):
            ctx.seq_copy(0, s)
        slots = list(range(n))
        tok = [prompt_tokens[-1]] * n
        ctx.synchronize()
        t0 = time.perf_counter()
        for step in range(tokens):
            rc = ctx.decode(tok, [p + step] * n, slots, outputs=True)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
        ctx.synchronize()
        return n * tokens / (time.perf_counter() - t0)
    finally:
        ctx.close()


def bench_naive(llm, prompt: str, n: int, tokens: int, eog_tokens: list[int]) -> tuple[float, int]:
    """Tokens/s and prompt tokens evaluated by n calls of Llama.create_completion."""
    prefill = 0
    first_eval = [True]
    original_eval = llm.eval

    def counting_eval(toks):  # the first eval of each call is the (uncached part of the) prompt
        nonlocal prefill
        if first_eval[0]:
            prefill += len(toks)
            first_eval[0] = False
        return original_eval(toks)

    llm.eval = counting_eval
    llm.reset()  # forget earlier rows: the first call prefills the prompt, later ones reuse it
    eog = {t: -1e9 for t in eog_tokens}
    generated = 0
    t0 = time.perf_counter()
    try:
        for i in range(n):
            first_eval[0] = True
            out = llm.create_completion(prompt, max_tokens=tokens, temperature=TEMPERATURE, top_p=1.0,
                                        top_k=0, min_p=0.0, repeat_penalty=1.0, seed=i, logit_bias=eog)
            generated += out["usage"]["completion_tokens"]
    finally:
        llm.eval = original_eval
    return generated / (time.perf_counter() - t0), prefill


def run_bench(model_path: str, ns: list[int], tokens: int, *, naive: bool = True, naive_max_n: int = 64,
              kv: str = "auto", n_gpu_layers: int | None = None, n_threads: int | None = None,
              raw: bool = True, on_row=None) -> list[BenchRow]:
    model = Model(model_path, n_gpu_layers=n_gpu_layers)
    prompt = render_chat(model, [{"role": "user", "content": BENCH_PROMPT}])
    prompt_tokens = model.tokenize(prompt, add_special=True)
    llm = None
    if naive:
        from llama_cpp import Llama
        llm = Llama(model_path=str(model_path), n_gpu_layers=999 if model.n_gpu_layers < 0 else model.n_gpu_layers,
                    n_ctx=len(prompt_tokens) + tokens + 64, verbose=False,
                    n_threads=n_threads or os.cpu_count(), n_threads_batch=n_threads or os.cpu_count())
        bench_naive(llm, prompt, 1, 4, model.eog_tokens)  # warm-up: first-call allocations
    rows = []
    naive_measured: dict[int, tuple[float, int]] = {}
    for n in ns:
        layouts = {"auto": [choose_kv_unified(n)], "unified": [True], "split": [False], "both": [True, False]}[kv]
        for unified in layouts:
            _reset_peak_rss()
            tok_s, gen_tok_s, engine = bench_engine(model, prompt_tokens, n, tokens, unified=unified, n_threads=n_threads)
            stats = engine.stats
            engine_rss = _peak_rss_mb()
            engine.close()
            raw_tok_s = bench_raw_decode(model, prompt_tokens, n, tokens, unified=unified,
                                         n_threads=n_threads) if raw else None
            naive_tok_s = naive_prefill = naive_rss = None
            if llm is not None and n <= naive_max_n:
                if n not in naive_measured:
                    _reset_peak_rss()
                    naive_measured[n] = bench_naive(llm, prompt, n, tokens, model.eog_tokens) + (_peak_rss_mb(),)
                naive_tok_s, naive_prefill, naive_rss = naive_measured[n]
            row = BenchRow(n=n, tokens=tokens, kv="unified" if unified else "split",
                           prompt_tokens=len(prompt_tokens), engine_tok_s=round(tok_s, 1),
                           engine_gen_tok_s=round(gen_tok_s, 1),
                           engine_prefill_tokens=stats.tokens_prefilled, engine_decode_calls=stats.decode_calls,
                           engine_peak_rss_mb=round(engine_rss, 1),
                           raw_decode_tok_s=round(raw_tok_s, 1) if raw_tok_s else None,
                           naive_tok_s=round(naive_tok_s, 1) if naive_tok_s else None,
                           naive_prefill_tokens=naive_prefill,
                           naive_peak_rss_mb=round(naive_rss, 1) if naive_rss else None)
            rows.append(row)
            if on_row:
                on_row(row)
    model.close()
    return rows
