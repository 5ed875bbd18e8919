"""What sample pools and shared draws save: `tts calibrate` on the same problems and grid, per
setting (every setting its own run, plus a difficulty run: the calibration before pools,
`--per-setting`) against pooled (one Best-of-N pool per temperature at max(budgets); beam and
DVTS still their own runs, all runs sharing the steps they would all sample). Both run here,
one after the other, each into a fresh folder; `--unshared` adds pooled without shared draws
(`--no-shared-draws`), to tell what each part saves.

Reported per mode: wall seconds, the runs made, and the tokens the policy generated (sums of
the records' compute; unlike seconds, they do not depend on what else the machine is doing),
and their ratios. Then, for every majority / Best-of-N setting, the pooled estimate against the
accuracy its own run measured on the same problems (paired; with a 90% bootstrap interval): the
estimate should agree within the noise.

    python benchmarks/calibrate_cost.py --out runs/cost            # the issue's grid: arith-calib, 24 problems
    python benchmarks/calibrate_cost.py --out runs/cost-smoke --limit 4 --budgets 2,4 --max-steps 2 --max-step-tokens 16

Default grid: budgets 4,8,16, temperatures 0.3,0.7, beam widths 2,4, aggregations last,min,
strategies cot, majority, best-of-n, beam, dvts (the issue's), SmolLM2 (bundled), --prm
confidence, few-shot prompt, 6 steps of 64 tokens, arith-calib.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's tts_cli, as the `python -m tts_cli` runs below (cwd=REPO) use

from tts_cli.pools import paired_difference
from tts_cli.profile import Profile
from tts_cli.results import read_records


def calibrate(args, out: Path, per_setting: bool, shared: bool = True) -> float:
    """One `tts calibrate` in a subprocess; its wall seconds."""
    if out.exists() or (out.parent / (out.name + ".runs")).exists():
        sys.exit(f"{out} (or its .runs folder) exists: give a fresh --out (the benchmark times a run from scratch)")
    cmd = [sys.executable, "-m", "tts_cli", "calibrate", args.data, "--out", str(out), "--budgets", args.budgets,
           "--temperatures", args.temperatures, "--beam-widths", args.beam_widths, "--aggregations", args.aggregations,
           "--prm", args.prm, "--prompt", "few-shot", "--max-steps", str(args.max_steps),
           "--max-step-tokens", str(args.max_step_tokens), "--samples", str(args.samples)]
    cmd += ["--strategies", args.strategies]
    cmd += ["--limit", str(args.limit)] if args.limit else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--per-setting"] if per_setting else []
    cmd += [] if shared else ["--no-shared-draws"]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.perf_counter() - t0


def run_work(runs: Path) -> dict:
    """Runs made, the tokens generated and evaluated in them (policy, verifier), and engine seconds."""
    files = sorted(runs.glob("*.jsonl"))
    generated = evaluated = seconds = 0
    for f in files:
        for r in read_records(f):
            c = r.get("compute") or {}
            generated += (c.get("policy") or {}).get("tokens_generated", 0)
            evaluated += sum((c.get(part) or {}).get("tokens_evaluated", 0) for part in ("policy", "verifier"))
            seconds += sum((c.get(part) or {}).get("seconds", 0.0) for part in ("policy", "verifier"))
    # engine seconds: the decode time the records were charged (a shared decode split by rows)
    return {"runs": len(files), "tokens_generated": generated, "tokens_evaluated": evaluated,
            "engine_seconds": round(seconds, 1)}


def per_problem(runs: Path, setting_key: str) -> dict:
    return {r["id"]: float(bool(r.get("correct"))) for r in read_records(runs / f"{setting_key}.jsonl")
            if not r.get("error")}


def estimates_against_runs(pooled: Path, per_setting: Path) -> list[dict]:
    """Each pooled estimate next to the accuracy of the same setting's own run, on the problems
    both have: the per-problem estimates recomputed from the pool files as calibrate made them."""
    from tts_cli.calibrate_plan import Setting
    from tts_cli.calibrate_profile import estimate_from_pool, mean_flops
    from tts_cli.pools import pools_from_records
    profile = Profile.load(pooled)
    pool_runs, own_runs = pooled.parent / (pooled.name + ".runs"), per_setting.parent / (per_setting.name + ".runs")
    pools = {}
    rows = []
    for e in profile.estimates:
        if not e["estimated"] or not (own_runs / f"{e['setting']}.jsonl").exists():
            continue
        if e["run"] not in pools:
            records = read_records(pool_runs / f"{e['run']}.jsonl")
            pools[e["run"]] = (pools_from_records(records), mean_flops(records))
        estimate = estimate_from_pool(Setting(**e["settings"]), pools[e["run"]][0], pools[e["run"]][1], e["run"],
                                      profile.heldout.get("seed", 0)).per_problem
        measured = per_problem(own_runs, e["setting"])
        ids = [i for i in measured if i in estimate]
        if not ids:
            continue
        difference = paired_difference([estimate[i] for i in ids], [measured[i] for i in ids])
        rows.append({"budget": e["budget"], "setting": e["setting"], "problems": len(ids),
                     "estimated": round(sum(estimate[i] for i in ids) / len(ids), 4),
                     "measured": round(sum(measured[i] for i in ids) / len(ids), 4),
                     "difference": difference.as_dict()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="a fresh folder for both calibrations")
    ap.add_argument("--data", default="arith-calib")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--budgets", default="4,8,16")
    ap.add_argument("--temperatures", default="0.3,0.7")
    ap.add_argument("--beam-widths", default="2,4")
    ap.add_argument("--aggregations", default="last,min")
    ap.add_argument("--prm", default="confidence")
    ap.add_argument("--strategies", default="cot,majority,best-of-n,beam,dvts",
                    help="the issue's (the settings calibrate had then); the early-stopping strategies add "
                         "per-setting runs, not pooled ones")
    ap.add_argument("--samples", type=int, default=8, help="the per-setting difficulty run's paths")
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--unshared", action="store_true", help="also run pooled without shared draws")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pooled, old = args.out / "pooled.yaml", args.out / "per-setting.yaml"
    seconds = {"per_setting": calibrate(args, old, per_setting=True), "pooled": calibrate(args, pooled, per_setting=False)}
    if args.unshared:
        seconds["pooled_unshared"] = calibrate(args, args.out / "pooled-unshared.yaml", per_setting=False, shared=False)
    work = {mode: run_work(args.out / f"{mode.replace('_', '-')}.yaml.runs") for mode in seconds}
    work["pooled"]["shared_draws"] = Profile.load(pooled).meta.get("shared_draws")
    report = {"grid": vars(args) | {"out": str(args.out)}, "seconds": {k: round(v, 1) for k, v in seconds.items()},
              "work": work,
              "ratio": {mode: {"seconds": round(seconds[mode] / seconds["per_setting"], 3),
                               "tokens_generated": round(work[mode]["tokens_generated"] /
                                                         max(1, work["per_setting"]["tokens_generated"]), 3),
                               "tokens_evaluated": round(work[mode]["tokens_evaluated"] /
                                                         max(1, work["per_setting"]["tokens_evaluated"]), 3)}
                        for mode in seconds if mode != "per_setting"},
              "estimates_against_runs": estimates_against_runs(pooled, old)}
    (args.out / "calibrate_cost.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("seconds", "work", "ratio")}, indent=1))
    rows = report["estimates_against_runs"]
    for row in rows:
        d = row["difference"]
        print(f"N={row['budget']:>3} {row['setting']:34} pooled estimate {row['estimated']:.3f}  own run "
              f"{row['measured']:.3f}  difference {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]")
    inside = sum(r["difference"]["lo"] <= 0 <= r["difference"]["hi"] for r in rows)
    print(f"{inside} of {len(rows)} estimates agree with their own run within the 90% interval")
    print(f"wrote {args.out / 'calibrate_cost.json'}")


if __name__ == "__main__":
    main()
