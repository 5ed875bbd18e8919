"""How early can majority vote stop? Choose majority-adaptive's wave and threshold on one family
of problems and check the choice on others, from finished runs' candidates (no generation).

Every results file given holds N independent samples per problem (a majority or Best-of-N run
at N, e.g. `tts grade ... --strategy majority --n 16`). For each (wave, threshold),
pools.adaptive estimates majority-adaptive at budget N over random orders of those samples:
accuracy, paths and tokens sampled. On the --tune files the cheapest setting that matches
majority at N (the same samples, all of them) is chosen: --match point (the default) asks its
accuracy not below majority's; --match interval takes "not worse beyond the noise", the paired
difference's 90% interval reaching above 0 (lax when few problems are right: on 55 problems with 6
right it accepted a rule that lost 22 points on another family). On the --report files that
one setting is printed against majority at N with the paired difference's 90% interval over
problems, and its tokens against majority's.

    python benchmarks/adaptive_stop.py \\
        --tune runs/dev-t0.7/stories-dev-bon16-confidence.jsonl runs/dev-t0.7/mixed-dev-bon16-confidence.jsonl \\
        --report runs/transfer/stories-test-bon16-confidence.jsonl runs/transfer/mixed-test-bon16-confidence.jsonl \\
        runs/ph/maj16.jsonl

Tokens: a candidate's own count when its record has one (results written since candidates keep
`tokens`), else its run's generated tokens shared out by text length.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tts_cli.pools import expected_accuracy, paired_difference, pools_from_records  # noqa: E402
from tts_cli.pools.adaptive import adaptive_accuracy  # noqa: E402
from tts_cli.results import read_records  # noqa: E402


def load_pools(path: Path):
    pools = pools_from_records(read_records(path)) if path.is_file() else []
    if not pools:
        sys.exit(f"error: {path}: no graded problem with sampled candidates (a results file of a majority or "
                 "Best-of-N run)")
    return pools


def sweep(pools, n, waves, thresholds, orders):
    majority = expected_accuracy(pools, "majority", n)
    rows = []
    for wave in waves:
        for threshold in thresholds:
            est = adaptive_accuracy(pools, n, threshold=threshold, wave=wave, orders=orders)
            diff = paired_difference(est.accuracy.per_problem, majority.per_problem)
            rows.append({"wave": wave, "threshold": threshold, "accuracy": est.accuracy.mean,
                         "majority": majority.mean, "difference": diff, "token_ratio": est.token_ratio,
                         "mean_paths": float(est.paths.mean())})
    return rows


def line(name, r) -> str:
    return (f"{name:48s} wave {r['wave']:>2} threshold {r['threshold']:<5g} accuracy {r['accuracy']:.3f} "
            f"(majority {r['majority']:.3f}; difference {r['difference'].describe()}) paths {r['mean_paths']:.1f} "
            f"tokens {r['token_ratio']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tune", type=Path, nargs="+", required=True)
    ap.add_argument("--report", type=Path, nargs="+", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--waves", default="2,4")
    ap.add_argument("--thresholds", default="0.5,0.6,0.7,0.75,0.8,0.85,0.9,0.95")
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--match", choices=("point", "interval"), default="point")
    ap.add_argument("--out", type=Path, default=None, help="write every row as JSON here")
    args = ap.parse_args()
    waves = [int(w) for w in args.waves.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]

    tune_pools = [p for path in args.tune for p in load_pools(path)]
    rows = sweep(tune_pools, args.n, waves, thresholds, args.orders)
    print(f"tuning on {len(tune_pools)} problems ({', '.join(map(str, args.tune))})")
    for r in rows:
        print(line("  tune", r))
    if args.match == "point":
        fit = [r for r in rows if r["accuracy"] >= r["majority"]]
    else:
        fit = [r for r in rows if r["difference"].hi > 0]  # an interval ending at 0: worse in 95% of resamples
    if not fit:
        sys.exit("no setting matched majority's accuracy on the tuning set")
    chosen = min(fit, key=lambda r: (r["token_ratio"], -r["accuracy"]))
    print(line("chosen", chosen))
    out = {"tune": [dict(r, difference=r["difference"].as_dict()) for r in rows],
           "chosen": {"wave": chosen["wave"], "threshold": chosen["threshold"], "match": args.match}, "report": {}}
    for path in args.report:
        pools = load_pools(path)
        [r] = sweep(pools, args.n, [chosen["wave"]], [chosen["threshold"]], args.orders)
        print(line(f"report {path.name} ({len(pools)})", r))
        out["report"][str(path)] = dict(r, difference=r["difference"].as_dict(), problems=len(pools))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
