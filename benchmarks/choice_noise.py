"""How much must a setting gain to replace the default? From a finished calibration's runs (no
generation): per budget, on all the problems that choose (the profile decides per bin, on fewer), the critical value of the max-t intervals
the noise rule uses (pools.simultaneous_differences) against Bonferroni's for as many settings,
the margin a typical setting needed (the profile's "a win needed"), and the challengers nearest
to winning (their gain over the default, in bootstrap spreads).

    python benchmarks/choice_noise.py runs/heldout-mix/profile.yaml.runs     # docs/measurements.md

The grid flags must be the calibration's (these defaults are auto_heldout.py's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import NormalDist

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tts_cli.calibrate_plan import (COT, Setting, calibration_plan, candidate_settings, pool_key, reference_temperature,
                                   run_files)
from tts_cli.calibrate_profile import BOOTSTRAP_RESAMPLES, Options, measure, split
from tts_cli.pools import choose_setting
from tts_cli.results import read_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, help="a calibration's OUT.runs folder")
    ap.add_argument("--budgets", default="4,8,16")
    ap.add_argument("--temperatures", default="0.3,0.7")
    ap.add_argument("--beam-widths", default="2,4")
    ap.add_argument("--aggregations", default="last,min")
    ap.add_argument("--temperature", type=float, default=0.7, help="the calibration's --temperature")
    ap.add_argument("--show", type=int, default=3, help="challengers listed per budget")
    args = ap.parse_args()
    if not args.runs.is_dir():
        sys.exit(f"{args.runs}: no such folder (a calibration's OUT.runs)")
    budgets = [int(b) for b in args.budgets.split(",")]
    temperatures = [float(t) for t in args.temperatures.split(",")]

    def settings_for(budget):
        return candidate_settings(budget, has_verifier=True, temperatures=temperatures,
                                  beam_widths=[int(m) for m in args.beam_widths.split(",")],
                                  aggregations=args.aggregations.split(","))

    plan = calibration_plan(budgets, settings_for, has_verifier=True)
    files = run_files(plan, args.runs)
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(f"{args.runs}: no {missing[0]} (are the grid flags the calibration's?)")
    records = {key: [r for r in read_records(path) if "id" in r] for key, path in files.items()}
    options = Options(budgets=budgets, base_temperature=args.temperature)
    measured = measure(plan, records, settings_for, options)
    calib, _ = split(measured.ids, options)
    reference_t = reference_temperature(temperatures, args.temperature)
    print(f"{len(calib)} choosing problems of {len(measured.ids)} ({pool_key(max(budgets), reference_t)} is the "
          f"difficulty reference)")
    for budget in budgets:
        cell = {key: m.per_problem for key, m in measured.table[budget].items()}
        majority = Setting("majority", budget, temperature=reference_t).key
        decided = choose_setting(cell, majority=majority, cot=COT.key, problems=set(calib),
                                 resamples=BOOTSTRAP_RESAMPLES)
        bonferroni = NormalDist().inv_cdf(1 - (1 - decided["level"]) / (2 * decided["compared"]))
        print(f"N={budget}: {decided['setting']} ({decided['rule']}; default {decided['default']}); "
              f"{decided['compared']} settings compared; critical {decided['critical']:.2f} spreads "
              f"(Bonferroni {bonferroni:.2f}); a win needed about +{decided['margin']:.1%}")
        # each challenger's gain in spreads: its interval's half-width is `critical` spreads
        diffs, critical = decided["differences"], decided["critical"]
        spreads = {k: d["mean"] * critical / (d["hi"] - d["mean"]) for k, d in diffs.items() if d["hi"] > d["mean"]}
        for key in sorted(spreads, key=spreads.get, reverse=True)[:args.show]:
            print(f"    {key:45} {diffs[key]['mean']:+.1%} = {spreads[key]:.2f} spreads")


if __name__ == "__main__":
    main()
