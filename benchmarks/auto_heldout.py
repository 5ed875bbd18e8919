"""Does a profile hold on problems it did not see? Calibrate on arith-train (which holds arith-calib), then
grade `--strategy auto` against majority vote and against the best single fixed setting (the
profile's, at that budget), all at the same N, on arith-test and on a second family of problems
unlike the training ones (benchmarks/data/mixed-test.jsonl, from make_mixed.py), with 90%
bootstrap intervals over problems and paired differences.

    python benchmarks/auto_heldout.py --out runs/heldout                   # the issue's measurement
    python benchmarks/auto_heldout.py --out runs/heldout-smoke --calib-limit 6 --test-limit 3 \\
        --budgets 2,4 --n 4 --beam-widths 2 --aggregations last --max-steps 2 --max-step-tokens 16

A second look at the same profile on problems no run has graded yet: `--test-skip 45` (after a
`--test-limit 45` run in the same --out) grades each test set from its 46th problem, then reports
each set also with its first 45, and every set together.

Everything resumes: calibrate's runs and each grade run keep their results files in --out.
Printed: the profile's own held-out check (calibrate's, on 30% of the calibration set), then per
test set: auto, majority and the best fixed setting with their intervals, auto - majority and
auto - best fixed on the same problems; the goals: auto never below majority (the difference's
interval not all below 0), auto's accuracy not below the lower end of the best fixed setting's
interval on the same problems, and the profile's predicted accuracy (the held-out check's, at N)
agreeing with auto's realized one: the interval of their difference (the two half-widths in
quadrature: independent problems) holds 0; whether the predicted mean lies inside the realized
interval is reported too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's tts_cli, as the `python -m tts_cli` runs below (cwd=REPO) use

from tts_cli.datasets import resolve_data
from tts_cli.pools import bootstrap_interval, paired_difference
from tts_cli.profile import Profile
from tts_cli.render import heldout_lines

TEST_SETS = ("arith-test", "benchmarks/data/mixed-test.jsonl")


def search_flags(args) -> list[str]:
    return ["--prm", args.prm, "--prompt", "few-shot", "--max-steps", str(args.max_steps),
            "--max-step-tokens", str(args.max_step_tokens)] + (["--threads", str(args.threads)] if args.threads else [])


def tts(*words) -> None:
    cmd = [sys.executable, "-m", "tts_cli", *map(str, words)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def calibration_set(args) -> Path:
    """The --calibrate-on data sets in one file, each problem once (arith-train holds arith-calib's
    24 problems: a problem listed twice is one problem to grade, and would count once less than
    --calib-limit says)."""
    path = args.out / "calib.jsonl"
    lines, seen = [], set()
    for name in args.calibrate_on.split(","):
        for line in resolve_data(name).read_text(encoding="utf-8").splitlines():
            if line.strip() and (key := json.dumps(json.loads(line), sort_keys=True)) not in seen:
                seen.add(key)
                lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def setting_flags(settings: dict) -> list[str]:
    """A profile estimate's settings as `tts grade` flags."""
    out = ["--strategy", settings["strategy"], "--n", str(settings["n"])]
    for key in ("beam_width", "selection", "aggregation", "temperature", "stop_threshold"):
        if settings.get(key) is not None:
            out += [f"--{key.replace('_', '-')}", str(settings[key])]
    return out


def correct_by_id(path: Path) -> dict:
    from tts_cli.results import read_records
    return {r["id"]: float(bool(r.get("correct"))) for r in read_records(path) if not r.get("error")}


def skipping(test_set: str, skip: int, out: Path) -> str:
    """The test set without its first `skip` problems (a file in --out), or the set itself."""
    if not skip:
        return test_set
    lines = [line for line in resolve_data(test_set).read_text(encoding="utf-8").splitlines() if line.strip()]
    if skip >= len(lines):
        sys.exit(f"--test-skip {skip}: {test_set} has only {len(lines)} problems")
    path = out / f"{Path(test_set).stem}-from{skip + 1}.jsonl"
    path.write_text("\n".join(lines[skip:]) + "\n", encoding="utf-8")
    return str(path)


def compare_on(test_set: str, profile_path: Path, profile: Profile, args) -> dict:
    """auto, majority and the best fixed setting at N on one test set: name -> {problem id: right}.
    With --test-skip K, also the first K's runs when an earlier look left them in --out."""
    graded = skipping(test_set, args.test_skip, args.out)
    folder = args.out / Path(graded).stem
    folder.mkdir(exist_ok=True)
    # the best fixed setting: the held-out check's (the best on the calibration problems at N)
    row = next((r for r in profile.heldout.get("budgets", []) if r["budget"] == args.n), None)
    best_key = row["best_fixed"]["setting"] if row else max(
        (e for e in profile.estimates if e["budget"] == args.n), key=lambda e: e["accuracy"])["setting"]
    best = next(e for e in profile.estimates if e["budget"] == args.n and e["setting"] == best_key)
    majority = {"strategy": "majority", "n": args.n, "temperature": profile.meta.get("reference_temperature")}
    runs = {"auto": ["--strategy", "auto", "--n", str(args.n), "--profile", str(profile_path)],
            "majority": setting_flags(majority), f"best fixed ({best_key})": setting_flags(best["settings"])}
    limit = ["--limit", str(args.test_limit)] if args.test_limit else []
    results, earlier = {}, {}
    for name, flags in runs.items():
        out = folder / (name.split(" ")[0] + ".jsonl")
        tts("grade", graded, "--out", out, *flags, *search_flags(args), *limit)
        results[name] = correct_by_id(out)
        first = args.out / Path(test_set).stem / out.name
        if args.test_skip and first.exists():
            earlier[name] = correct_by_id(first)
    return {"test_set": graded, "results": results, "earlier": earlier if len(earlier) == len(runs) else None}


def summary(label: str, results: dict, n: int, predicted: dict | None = None) -> dict:
    """Accuracies with intervals and the paired differences (auto - majority, auto - best fixed)
    on the problems every run has; results: name -> {problem: right}, names as compare_on's.
    predicted: the held-out check's prediction for the profile at N (mean, lo, hi), set against
    auto's realized accuracy here."""
    ids = sorted(set.intersection(*(set(r) for r in results.values())))
    values = {name: [r[i] for i in ids] for name, r in results.items()}
    auto, maj, fixed = values["auto"], values["majority"], next(v for k, v in values.items() if k.startswith("best"))
    realized = bootstrap_interval(auto)
    out = {"test_set": label, "n": n, "problems": len(ids),
           "accuracy": {name: bootstrap_interval(v).as_dict() for name, v in values.items()},
           "auto_minus_majority": paired_difference(auto, maj).as_dict(),
           "auto_minus_best_fixed": paired_difference(auto, fixed).as_dict(),
           "goals": {"auto_not_below_majority": paired_difference(auto, maj).hi >= 0,
                     "auto_within_best_fixed_interval": realized.mean >= bootstrap_interval(fixed).lo}}
    if predicted:
        # two independent estimates (calibration problems, these problems): the difference's
        # half-width is their half-widths in quadrature (a normal approximation)
        half = ((predicted["hi"] - predicted["lo"]) ** 2 + (realized.hi - realized.lo) ** 2) ** 0.5 / 2
        gap = realized.mean - predicted["mean"]
        out["realized_minus_predicted"] = {"mean": round(gap, 4), "lo": round(gap - half, 4),
                                           "hi": round(gap + half, 4),
                                           "predicted_inside_realized": realized.lo <= predicted["mean"] <= realized.hi}
        out["goals"]["predicted_agrees_with_realized"] = gap - half <= 0 <= gap + half
    return out


def pooled(looks: list[dict]) -> dict:
    """Several looks' results as one: problems keyed by (look, id), so ids may repeat across sets.
    Names are matched by position (each set's best fixed setting may differ)."""
    out: dict = {}
    for k, look in enumerate(looks):
        for j, (name, by_id) in enumerate(look.items()):
            out.setdefault(["auto", "majority", "best fixed"][j], {}).update({(k, i): v for i, v in by_id.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calibrate-on", default="arith-train")
    ap.add_argument("--calib-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--test-sets", default=",".join(TEST_SETS))
    ap.add_argument("--test-skip", type=int, default=0,
                    help="leave out each test set's first K problems (those an earlier --test-limit K run graded)")
    ap.add_argument("--budgets", default="4,8,16")
    ap.add_argument("--n", type=int, default=16, help="the budget auto, majority and the best fixed setting run at")
    ap.add_argument("--temperatures", default="0.3,0.7")
    ap.add_argument("--beam-widths", default="2,4")
    ap.add_argument("--aggregations", default="last,min")
    ap.add_argument("--prm", default="confidence")
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    profile_path = args.out / "profile.yaml"
    for t in args.test_sets.split(","):  # a --test-skip past a set's end stops before calibrating
        skipping(t, args.test_skip, args.out)
    tts("calibrate", calibration_set(args), "--out", profile_path, "--budgets", args.budgets, "--temperatures",
        args.temperatures, "--beam-widths", args.beam_widths, "--aggregations", args.aggregations,
        *search_flags(args), *(["--limit", str(args.calib_limit)] if args.calib_limit else []))
    profile = Profile.load(profile_path)
    print("\n".join(heldout_lines(profile)))
    looks = [compare_on(t, profile_path, profile, args) for t in args.test_sets.split(",")]
    row = next((r for r in profile.heldout.get("budgets", []) if r["budget"] == args.n), None)
    predicted = row["profile"]["predicted"] if row else None
    sets = [summary(look["test_set"], look["results"], args.n, predicted) for look in looks]
    for look in looks:  # this look and the earlier one on the same set, as one set
        if look["earlier"]:
            sets.append(summary(f"{look['test_set']} with its first {args.test_skip}",
                                pooled([look["earlier"], look["results"]]), args.n, predicted))
    if len(looks) > 1:
        every = [look["results"] for look in looks] + [look["earlier"] for look in looks if look["earlier"]]
        sets.append(summary("every test set together", pooled(every), args.n, predicted))
    report = {"profile": str(profile_path), "heldout_check": profile.heldout, "test_sets": sets}
    (args.out / "auto_heldout.json").write_text(json.dumps(report, indent=1))
    for t in report["test_sets"]:
        print(f"{t['test_set']} ({t['problems']} problems, N={t['n']}):")
        for name, iv in t["accuracy"].items():
            print(f"  {name:40} {iv['mean']:.1%} [{iv['lo']:.1%}, {iv['hi']:.1%}]")
        for key in ("auto_minus_majority", "auto_minus_best_fixed", "realized_minus_predicted"):
            if key not in t:
                continue
            d = t[key]
            print(f"  {key:40} {d['mean']:+.1%} [{d['lo']:+.1%}, {d['hi']:+.1%}]")
        print(f"  goals: {t['goals']}")
    print(f"wrote {args.out / 'auto_heldout.json'}")


if __name__ == "__main__":
    main()
