"""Does a head read from the policy's own decode (policy_head) choose as the same head computed
the two-context way? On a real model (issue 20's goal; tests/test_policy_head.py checks it on the
tiny model).

For each problem, Best-of-N runs twice with the same seed (so the same samples):
- policy: PolicyHeadPRM, the hidden state kept from the policy's decode at each step's end;
- two-context: a second llama.cpp context on the same GGUF re-reads, from scratch, exactly the
  tokens each step's state was computed from (prompt + path so far) and applies the same head.
Printed per problem: the same candidates?, the same answer (with --selection, and with the other
selection from the same candidates)?, the largest step-score difference; then totals and the
engine seconds of each.

    python benchmarks/policy_head_equivalence.py --head smol-policy --data arith-test --limit 8 --n 16

--head names a registered policy_head (`tts train-prm --features policy` registers one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tts_cli.datasets import resolve_data  # noqa: E402
from tts_cli.registry import RegistryError, load_registry, resolve  # noqa: E402
from tts_cli.search import SearchConfig  # noqa: E402
from tts_cli.search.common import choose_answer, group_answers  # noqa: E402
from tts_cli.solver import open_policy, run_search  # noqa: E402
from tts_cli.verifiers import PolicyHeadPRM  # noqa: E402
from tts_cli.verifiers.head import load_head  # noqa: E402
from tts_cli.verifiers.reread import RereadHead, recording_reads  # noqa: E402


def compare_on(problem: dict, policy, mine, two, config) -> tuple[dict, dict]:
    """One problem: Best-of-N with each head, the same seed; (the comparison, seconds per head)."""
    results, seconds = {}, {}
    for name, verifier in (("policy", mine), ("two-context", two)):
        start = time.perf_counter()
        results[name] = run_search("best-of-n", problem["problem"], policy, verifier, config)
        seconds[name] = time.perf_counter() - start
    a, b = results["policy"], results["two-context"]
    diffs = [abs(x - y) for ca, cb in zip(a.candidates, b.candidates) for x, y in zip(ca.step_scores, cb.step_scores)]
    # the other selection from the same candidates and scores: no second run
    other = "vote" if config.selection == "max" else "max"
    a_other, b_other = (choose_answer(r.candidates, group_answers(r.candidates), other) for r in (a, b))
    return {"id": problem.get("id"), "same_candidates": [c.steps for c in a.candidates] == [c.steps for c in b.candidates],
            "same_answer": a.answer == b.answer, "answer": a.answer, f"same_answer_{other}": a_other == b_other,
            "scores_compared": len(diffs), "max_score_diff": max(diffs, default=0.0)}, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head", required=True, help="a registered policy_head")
    ap.add_argument("--data", default="arith-test")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--selection", choices=("max", "vote"), default="max",
                    help="the runs' selection; the other one is computed from the same candidates too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the per-problem figures here as JSON")
    args = ap.parse_args()

    try:
        model_path, entry = resolve(args.head, load_registry())
    except RegistryError as e:
        sys.exit(f"error: {e}")
    prm = (entry or {}).get("prm") or {}
    if prm.get("format") != "policy_head":
        sys.exit(f"error: {args.head}: not a policy_head (format {prm.get('format')!r})")
    head = load_head(prm["head_file"], "policy_head")
    config = SearchConfig(n=args.n, max_steps=args.max_steps, max_step_tokens=args.max_step_tokens,
                          temperature=args.temperature, seed=args.seed, selection=args.selection, prompt="few-shot")
    problems = [json.loads(line) for line in resolve_data(args.data).read_text().splitlines() if line.strip()]
    problems = problems[:args.limit]

    policy = open_policy(model_path, config, strategy="best-of-n", n_threads=args.threads, hidden=True)
    rows, seconds = [], {"policy": 0.0, "two-context": 0.0}
    with recording_reads() as reads:
        mine = PolicyHeadPRM(head, name=args.head, n_embd=policy.model.n_embd)
        two = RereadHead(policy.model, head, reads, n_threads=args.threads)
        try:
            for p in problems:
                row, spent = compare_on(p, policy, mine, two, config)
                rows.append(row)
                for name, s in spent.items():
                    seconds[name] += s
                print(json.dumps(row), flush=True)
        finally:
            two.close()
            policy.close()
    summary = {"problems": len(rows), "same_candidates": sum(r["same_candidates"] for r in rows),
               "same_answer": sum(r["same_answer"] for r in rows), "selection": args.selection,
               **{k: sum(r[k] for r in rows) for k in (rows[0] if rows else {}) if k.startswith("same_answer_")},
               "scores_compared": sum(r["scores_compared"] for r in rows),
               "max_score_diff": max((r["max_score_diff"] for r in rows), default=0.0),
               "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
