"""Compute per strategy on one problem: tokens prefilled and generated (policy and verifier),
FLOPs and wall time; and, for beam search, the verifier's tokens with and without incremental
scoring.

    python benchmarks/search_compute.py --n 16 --prm judge --problem-index 0 --max-steps 10 --max-step-tokens 128
"""

from __future__ import annotations

import argparse
import json

from tts_cli.datasets import resolve_data
from tts_cli.models import smollm2_path
from tts_cli.search import STRATEGIES, SearchConfig
from tts_cli.solver import open_policy, open_verifier, run_search


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--prm", default="judge")
    ap.add_argument("--problem-index", type=int, default=0)
    ap.add_argument("--data", default="gsm8k", help="a GSM8K-style data set: its name (tts data list) or a JSONL file")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--max-step-tokens", type=int, default=256)
    args = ap.parse_args()

    row = json.loads(resolve_data(args.data).read_text(encoding="utf-8").splitlines()[args.problem_index])
    problem, reference = row["question"], row["answer"].split("####")[-1].strip()
    config = SearchConfig(n=args.n, beam_width=args.beam_width, seed=args.seed, max_steps=args.max_steps,
                          max_step_tokens=args.max_step_tokens)
    policy = open_policy(smollm2_path(), config)
    verifier = open_verifier(args.prm, policy, config)
    print(f"problem {args.problem_index}: reference {reference}; N={args.n}, M={args.beam_width}, verifier {args.prm}")
    print(f"{'strategy':10} {'answer':>8} {'policy prefill':>14} {'policy gen':>10} {'verifier eval':>13} "
          f"{'TFLOPs':>7} {'seconds':>8}")
    for name in args.strategies.split(","):
        r = run_search(name, problem, policy, verifier, config)
        c = r.compute
        v = c.get("verifier", {})
        print(f"{name:10} {str(r.answer):>8} {c['policy']['tokens_prefilled']:>14} {c['policy']['tokens_generated']:>10} "
              f"{v.get('tokens_evaluated', 0):>13} {c['flops'] / 1e12:>7.2f} {c['seconds']:>8.1f}", flush=True)

    if "beam" in args.strategies.split(",") and args.prm == "judge":
        for incremental in (True, False):
            v = open_verifier("judge", policy, config)
            v.incremental = incremental
            r = run_search("beam", problem, policy, v, config)
            print(f"beam N={args.n} verifier tokens evaluated, incremental={incremental}: "
                  f"{r.compute['verifier']['tokens_evaluated']} ({r.compute['seconds']:.1f}s)", flush=True)
            v.close()


if __name__ == "__main__":
    main()
