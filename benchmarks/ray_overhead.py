"""What `--ray` costs on one machine: `tts grade` on the same problems as one process and on a
local Ray instance with 1 and 2 workers, one run after another (nothing else should run).

On a 2-core CPU the throughput is bounded by the cores, so 2 workers cannot beat one process
using both cores; what this measures is Ray's overhead: its start-up, the worker processes, and
handing problems out one by one. Answers are compared with the one-process run.

    python benchmarks/ray_overhead.py --limit 24 --json runs/ray-overhead.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "arith-test.jsonl"
SEARCH = ["--strategy", "majority", "--n", "4", "--prompt", "few-shot", "--max-steps", "6",
          "--max-step-tokens", "64", "--concurrency", "8"]


def grade(data: Path, limit: int, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "tts_cli", "grade", str(data), "--limit", str(limit), "--out", str(out),
           *SEARCH, *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    text = " ".join(r.stderr.split())
    started = re.search(r"started in ([\d.]+) s \(Ray ([\d.]+) s", text)
    recs = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {"command": " ".join(cmd[1:]), "wall_s": round(wall, 1),
            "ray_startup_s": float(started.group(1)) if started else None,
            "ray_connect_s": float(started.group(2)) if started else None,
            "problems": len(recs), "problems_per_min": round(60 * len(recs) / wall, 2),
            "answers": {r["id"]: r["answer"] for r in recs},
            "accuracy": sum(bool(r.get("correct")) for r in recs) / len(recs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--json", type=Path, help="write the rows here too")
    args = ap.parse_args()
    configs = {"one process": [], "ray, 1 worker": ["--ray", "local", "--workers", "1"],
               "ray, 2 workers": ["--ray", "local", "--workers", "2"]}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in configs.items():
            rows[name] = grade(args.data, args.limit, Path(tmp) / f"{len(rows)}.jsonl", extra)
            print(f"{name}: {rows[name]['wall_s']} s", file=sys.stderr)
    base = rows["one process"]
    print(f"{'':16} {'wall s':>7} {'problems/min':>13} {'vs one process':>15} {'start-up s (Ray)':>17} "
          f"{'after start-up s':>17} {'same answers':>13} {'accuracy':>9}")
    for name, r in rows.items():
        same = sum(r["answers"].get(k) == v for k, v in base["answers"].items())
        r["same_answers"] = same
        start = "-" if r["ray_startup_s"] is None else f"{r['ray_startup_s']} ({r['ray_connect_s']})"
        r["after_startup_s"] = round(r["wall_s"] - (r["ray_startup_s"] or 0), 1)
        print(f"{name:16} {r['wall_s']:>7} {r['problems_per_min']:>13} "
              f"{r['problems_per_min'] / base['problems_per_min']:>14.2f}x {start:>17} {r['after_startup_s']:>17} "
              f"{same:>6}/{len(base['answers']):<6} {r['accuracy']:>9.1%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
