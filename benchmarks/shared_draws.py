"""Shared draws on the real engine: each search alone (its own empty memo) against all of them
through one memo, side by side (search/memo.py). Reports how many searches came out the same
(candidate texts and answer), the tokens generated and prefilled either way, and the seconds.

On llama.cpp a path that goes on from a replayed step continues from KV cells its catch-up
prefill computed, not generation: logits differ in the last digits, so a near-tie between two
tokens can go the other way. Those searches differ in a candidate or two, not in distribution.

    python benchmarks/shared_draws.py --limit 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tts_cli.datasets import DataError, read_problems  # noqa: E402
from tts_cli.engine import Engine  # noqa: E402
from tts_cli.registry import default_model  # noqa: E402
from tts_cli.search import Job, Scheduler, SearchConfig, StepMemo  # noqa: E402
from tts_cli.verifiers.confidence import ConfidenceVerifier  # noqa: E402


def settings(n: int, temperature: float, max_steps: int, max_step_tokens: int):
    base = dict(prompt="few-shot", max_steps=max_steps, max_step_tokens=max_step_tokens, temperature=temperature)
    return [("best-of-n", SearchConfig(n=n, **base))] + [
        (strategy, SearchConfig(n=budget, beam_width=m, aggregation=agg, **base))
        for strategy in ("beam", "dvts") for budget in (n // 2, n) for m in (2, 4) for agg in ("last", "min")
        if budget % m == 0 and budget >= m]


def summary(result):
    return result.answer, sorted((tuple(c.steps), c.answer) for c in result.candidates)


def tokens(results, kind):
    return sum(r.compute["policy"].get(f"tokens_{kind}", 0) for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="benchmarks/data/arith-test.jsonl")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-steps", type=int, default=4)
    ap.add_argument("--max-step-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4, help="searches in flight in the shared run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="a JSON report")
    args = ap.parse_args()
    try:
        problems = [p.problem for p in read_problems(Path(args.data), limit=args.limit)[0]]
    except DataError as e:
        sys.exit(f"error: {e}")
    grid = settings(args.n, args.temperature, args.max_steps, args.max_step_tokens)
    jobs = [Job(p, s, c, tag=(i, j)) for i, p in enumerate(problems) for j, (s, c) in enumerate(grid)]
    with Engine(default_model(), n_ctx=16384, n_seq_max=4 * args.n, n_threads=args.threads) as engine:
        t0 = time.perf_counter()
        alone = {job.tag: r for job in jobs
                 for _, r in Scheduler(engine, ConfidenceVerifier(), memo=StepMemo()).run([job])}
        t1 = time.perf_counter()
        memo = StepMemo()
        shared = {job.tag: r for job, r in Scheduler(engine, ConfidenceVerifier(), memo=memo,
                                                     max_searches=args.concurrency).run(jobs)}
        t2 = time.perf_counter()
    same = sum(summary(alone[t]) == summary(shared[t]) for t in alone)
    same_answer = sum(alone[t].answer == shared[t].answer for t in alone)
    report = {"searches": len(jobs), "problems": len(problems), "settings": len(grid),
              "same_candidates": same, "same_answer": same_answer, "memo": memo.stats.as_dict(),
              "alone": {"seconds": round(t1 - t0, 1), "tokens_generated": tokens(alone.values(), "generated"),
                        "tokens_prefilled": tokens(alone.values(), "prefilled")},
              "shared": {"seconds": round(t2 - t1, 1), "tokens_generated": tokens(shared.values(), "generated"),
                         "tokens_prefilled": tokens(shared.values(), "prefilled")}}
    report["ratio_tokens_generated"] = round(report["shared"]["tokens_generated"] /
                                             max(1, report["alone"]["tokens_generated"]), 3)
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
