"""Which verifier pays on problems nobody tuned to: every verifier on the same N sampled
candidates per problem, on two problem families.

For each family: greedy CoT; one Best-of-N run of N paths scored by `confidence` (free: the
policy's own log-probs; its candidates are exactly majority vote's at the same seed); then
`tts rescore` of that run with each verifier (no generation: the same candidates chosen again);
majority vote and pass@N computed from the same candidates. One live Best-of-N run with
`--live-prm` (default arithmetic) checks that rescoring gives the answers a live search gives.

    python benchmarks/verifier_transfer.py --n 16 --out runs/transfer      # both families, ~25 min here
    python benchmarks/verifier_transfer.py --families stories-test --limit 8 --out runs/t-small
    python benchmarks/verifier_transfer.py --families benchmarks/data/stories-dev.jsonl,benchmarks/data/mixed-dev.jsonl \
        --temperature 0.3 --live-check 0 --out runs/dev-t0.3                 # choose a temperature off the test sets

Families: stories-test (benchmarks/make_stories.py: templates absent from every training and
calibration set here), mixed-test (make_mixed.py) and arith-test (make_arith.py's templates, those
arith-train was made from); stories-dev and mixed-dev (benchmarks/data: the same generators with
other seeds, no problem text shared with the test sets) to tune on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tts_cli.answers import answers_match  # noqa: E402
from tts_cli.results import read_records  # noqa: E402


def args_limit(limit: list) -> int:
    return int(limit[1]) if limit else 10**9


RESCORE = [("arithmetic", "vote"), ("arithmetic", "max"), ("arithmetic+coverage", "vote"), ("arithmetic+coverage", "max"),
           ("arithmetic+confidence", "vote"), ("confidence", "max"), ("confidence", "vote"),
           ("arithmetic --repair", "vote")]  # the last sum's slip corrected (tts rescore --repair)


def any_right(record: dict) -> str | None:
    """pass@N's answer: the reference when some candidate has it (a perfect verifier's pick)."""
    return record["reference"] if any(answers_match(c["answer"], record["reference"]) for c in record["candidates"]) \
        else None


def slug(prm: str) -> str:
    """A verifier with its flags as a file-name part: "arithmetic --repair" -> "arithmetic-repair"."""
    return prm.replace(" --", "-")


def tts(*args) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tts_cli", *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tts {' '.join(map(str, args))} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def majority(record: dict) -> str | None:
    groups: list[list] = []
    for c in record.get("candidates") or []:
        if c.get("answer") is None:
            continue
        for g in groups:
            if answers_match(c["answer"], g[0]):
                g.append(c["answer"])
                break
        else:
            groups.append([c["answer"]])
    return max(groups, key=len)[0] if groups else None


def row(name: str, records: list[dict], answer_of, flops_of) -> dict:
    right = sum(answers_match(answer_of(r), r["reference"]) for r in records)
    return {"setting": name, "correct": right, "problems": len(records),
            "flops_per_problem": sum(flops_of(r) for r in records) / max(1, len(records))}


def family(data: str, n: int, out: Path, common: list[str], limit: list[str], live_check: int,
           live_prm: str) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    name = Path(data).stem if data.endswith(".jsonl") else data
    cot, pool = out / f"{name}-cot.jsonl", out / f"{name}-bon{n}-confidence.jsonl"
    seconds = {"cot": tts("grade", data, "--out", cot, "--strategy", "cot", *common, *limit),
               "sample": tts("grade", data, "--out", pool, "--strategy", "best-of-n", "--n", n, "--prm", "confidence",
                             *common, *limit)}
    live = out / f"{name}-bon{n}-{slug(live_prm)}-live.jsonl"  # on the first problems: the check, not the figures
    if live_check:
        seconds[f"live {live_prm}"] = tts("grade", data, "--out", live, "--strategy", "best-of-n", "--n", n, "--prm",
                                          *live_prm.split(), *common, "--limit", min(args_limit(limit), live_check))
    flops = lambda r: r["compute"]["flops"]  # noqa: E731
    cots, pooled = read_records(cot), read_records(pool)
    rows = [row("CoT (greedy)", cots, lambda r: r["answer"], flops),
            row(f"majority N={n}", pooled, majority, flops),
            row(f"pass@{n} (a perfect verifier)", pooled,
                any_right, flops)]
    for prm, selection in RESCORE:
        path = out / f"{name}-rescore-{slug(prm)}-{selection}.jsonl"
        seconds[f"rescore {prm} {selection}"] = tts("rescore", pool, "--prm", *prm.split(), "--selection", selection,
                                                    "--out", path)
        rows.append(row(f"Best-of-N N={n}, {prm}, PRM-{selection.capitalize()}", read_records(path),
                        lambda r: r["answer"], flops))
    repaired = read_records(out / f"{name}-rescore-arithmetic-repair-vote.jsonl")
    rows.append(row(f"pass@{n} after --repair (a perfect verifier of the repaired answers)", repaired,
                    any_right, flops))
    lives = read_records(live) if live_check else []
    rescored = {r["key"]: r["answer"] for r in read_records(out / f"{name}-rescore-{slug(live_prm)}-vote.jsonl")}
    same = sum(rescored.get(r["key"]) == r["answer"] for r in lives)
    empty = sum(1 for r in pooled for c in r["candidates"] if not "".join(c["steps"]).strip())
    cands = sum(len(r["candidates"]) for r in pooled)
    for r in rows:
        r["family"] = name
    rows.append({"family": name, "setting": "checks", "live_verifier": live_prm, "live_same_answers": f"{same}/{len(lives)}",
                 "empty_candidates": f"{empty}/{cands}", "seconds": {k: round(v, 1) for k, v in seconds.items()}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="stories-test,arith-test")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/transfer"))
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--policy", default=None, help="the policy (a registry name or a GGUF path; default: tts's)")
    ap.add_argument("--live-check", type=int, default=16,
                    help="problems on which a live Best-of-N search with --live-prm is compared with rescoring (0: none)")
    ap.add_argument("--live-prm", default="arithmetic", choices=sorted({p for p, _ in RESCORE}),
                    help="the verifier of the live check (its PRM-Vote rescore is compared); 'arithmetic --repair' "
                         "checks --repair")
    args = ap.parse_args()
    common = ["--prompt", "few-shot", "--max-steps", "6", "--max-step-tokens", "64", "--temperature", args.temperature,
              "--context-per-path", "1024", *(["--policy", args.policy] if args.policy else [])]
    limit = ["--limit", args.limit] if args.limit else []
    rows = [r for f in args.families.split(",") for r in family(f, args.n, args.out, common, limit, args.live_check, args.live_prm)]
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        if r["setting"] == "checks":
            print(f"{r['family']}: live {r['live_verifier']} == rescored {r['live_same_answers']}, "
                  f"empty candidates {r['empty_candidates']}, seconds {r['seconds']}")
        else:
            print(f"| {r['family']} | {r['setting']} | {r['correct']}/{r['problems']} | {r['flops_per_problem']:.3g} |")


if __name__ == "__main__":
    main()
