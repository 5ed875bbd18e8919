"""How much arithmetic the arithmetic verifier finds and checks in reference solutions, and
whether it ever calls a reference's arithmetic false (it should not: they are right).

For GSM8K (steps: lines) and MATH-500 (steps: paragraphs, split on blank lines) it prints the
solutions, steps, steps with a fact, steps with a decided fact, facts true/false/unknown, and
every false fact with its problem, for a human to read. --unknown lists the undecided ones too.

    python -m benchmarks.reference_facts [--data ../shared/data] [--unknown]   (from the repo root)
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from tts_cli.verifiers.arithmetic import check, facts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {  # name: (file, solution field, step separator)
    "GSM8K": ("gsm8k_test.jsonl", "answer", "\n"),
    "MATH-500": ("math500.jsonl", "solution", "\n\n"),
}


def measure(rows: list[dict], field: str, separator: str) -> dict:
    counts = Counter()
    false, unknown = [], []
    for index, row in enumerate(rows):
        counts["solutions"] += 1
        for step in row[field].split(separator):
            if not step.strip():
                continue
            counts["steps"] += 1
            found = facts(step)
            results = [check(f) for f in found]
            counts["steps with a fact"] += bool(found)
            counts["steps with a decided fact"] += any(r is not None for r in results)
            for fact, result in zip(found, results):
                counts[{True: "true", False: "false", None: "unknown"}[result]] += 1
                if fact.source == "annotation":
                    counts["annotations"] += 1
                    counts["annotations true"] += result is True
                if result is False:
                    false.append((index, fact))
                elif result is None:
                    unknown.append((index, fact))
    return {"counts": counts, "false": false, "unknown": unknown}


def report(name: str, m: dict, seconds: float, show_unknown: bool) -> None:
    c = m["counts"]
    share = c["steps with a fact"] / c["steps"] if c["steps"] else 0.0
    print(f"{name}: {c['solutions']} solutions, {c['steps']} steps, {c['steps with a fact']} with a fact "
          f"({share:.1%}), {c['steps with a decided fact']} with a decided fact; "
          f"facts: {c['true']} true, {c['false']} false, {c['unknown']} unknown ({seconds:.1f} s)")
    if c["annotations"]:
        print(f"  calculator annotations: {c['annotations']}, {c['annotations true']} true")
    for index, fact in m["false"]:
        print(f"  false, line {index + 1}: {fact}")
    if show_unknown:
        for index, fact in m["unknown"]:
            print(f"  unknown, line {index + 1}: {fact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding gsm8k_test.jsonl and math500.jsonl")
    parser.add_argument("--unknown", action="store_true", help="also list the facts that could not be decided")
    args = parser.parse_args()
    for name, (file, field, separator) in DATASETS.items():
        path = args.data / file
        if not path.exists():
            print(f"{name}: {path} not found, skipped")
            continue
        rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
        start = time.perf_counter()
        m = measure(rows, field, separator)
        report(name, m, time.perf_counter() - start, args.unknown)


if __name__ == "__main__":
    main()
