"""Search at the price of sampling: particle filtering against beam search, adaptive majority
against majority, with a verifier that costs nothing next to decoding (`arithmetic`, the
arithmetic the steps state; or `confidence`), on a problem family nobody tuned to.

One `tts compare` run (a problem's prompt prefilled once for every setting), then the results
files read back for generated tokens and the budget the early-stopping strategies saved.

    python benchmarks/search_price.py --data stories-test --prm arithmetic --out runs/price   # ~40 min here
    python benchmarks/search_price.py --data stories-test --limit 8 --out runs/price-small

Goals (issue 20): particle filtering reaches beam search's accuracy at <= 0.5x its FLOPs or
beats it at equal FLOPs; adaptive majority matches majority N=16's accuracy with <= 0.6x its
generated tokens.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tts_cli.results import read_records  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="stories-test")
    ap.add_argument("--prm", default="arithmetic")
    ap.add_argument("--budgets", default="8,16")
    ap.add_argument("--strategies", default="cot,majority,majority-adaptive,beam,particle-filter")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/price"))
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "tts_cli", "compare", args.data, "--strategies", args.strategies, "--budgets",
           args.budgets, "--prm", args.prm, "--prompt", "few-shot", "--max-steps", "6", "--max-step-tokens", "64",
           "--context-per-path", "1024", "--out", str(args.out)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"compare failed:\n{r.stderr[-3000:]}")
    summary = json.loads((args.out / "summary.json").read_text())
    rows = []
    for row in summary["rows"]:
        path = Path(row["results"])
        if row.get("estimated_from") not in (None, row["n"]) or not path.exists():
            continue  # estimated from a pool of N_max paths: no records of its own
        recs = [x for x in read_records(path) if not x.get("error")]
        generated = sum((x.get("compute") or {}).get("policy", {}).get("tokens_generated", 0) for x in recs)
        saved = sum((x.get("saved") or {}).get("tokens_saved_estimate", 0) for x in recs)
        rows.append({"strategy": row["strategy"], "n": row["n"], "accuracy": row["accuracy"],
                     "correct": sum(bool(x.get("correct")) for x in recs), "problems": len(recs),
                     "flops_per_problem": row["flops_per_problem"],
                     "generated_per_problem": generated / max(1, len(recs)),
                     "saved_per_problem": saved / max(1, len(recs))})
    (args.out / "price.json").write_text(json.dumps(rows, indent=1))
    print("| strategy | N | correct | FLOPs / problem | generated tokens / problem | tokens saved (est.) |")
    print("|---|---|---|---|---|---|")
    for x in rows:
        print(f"| {x['strategy']} | {x['n']} | {x['correct']}/{x['problems']} | {x['flops_per_problem']:.3g} | "
              f"{x['generated_per_problem']:.0f} | {x['saved_per_problem']:.0f} |")


if __name__ == "__main__":
    main()
