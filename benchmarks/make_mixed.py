"""Writes a second family of short math problems, unlike the arith sets' templates (make_arith.py:
sums and differences, "has N and gets/gives M", "boxes of"): percentages, unit conversions,
equal sharing, clock times, rates, "how much more", and a two-step price problem. Used to check
a profile calibrated on arith-calib/arith-train on problems it was not made for
(benchmarks/auto_heldout.py). Deterministic for a seed.

    python benchmarks/make_mixed.py --n 60 --seed 7 > benchmarks/data/mixed-test.jsonl
    python benchmarks/make_mixed.py --n 40 --seed 9 --exclude benchmarks/data/mixed-test.jsonl \
        benchmarks/data/mixed-dev.jsonl > benchmarks/data/mixed-calib.jsonl

--exclude leaves out every problem whose text is in the given files or already written (the
templates are small, so two seeds can draw the same problem) and draws on until --n problems are
written; without it nothing is left out (mixed-test.jsonl holds a few repeats).
"""

from __future__ import annotations

import argparse
import json
import random
import sys

NAMES = ["Noor", "Kai", "Ines", "Omar", "Yuki", "Lars", "Zoe", "Ravi"]


def percent(rng):
    p, x = rng.choice([10, 20, 25, 50]), 20 * rng.randint(1, 10)
    return f"What is {p}% of {x}?", p * x // 100, 1


def minutes(rng):
    h = rng.randint(2, 9)
    return f"How many minutes are there in {h} hours?", 60 * h, 1


def centimeters(rng):
    m = rng.randint(2, 9)
    return f"How many centimeters are in {m} meters?", 100 * m, 1


def sharing(rng):
    k, each = rng.randint(2, 6), rng.randint(2, 9)
    return (f"{k * each} cookies are shared equally among {k} friends. How many cookies does each friend get?",
            each, 2)


def clock(rng):
    start, length = rng.randint(1, 7), rng.randint(2, 4)
    return (f"A movie starts at {start} o'clock and lasts {length} hours. At what hour (o'clock) does it end?",
            start + length, 2)


def rate(rng):
    name, pages, days = rng.choice(NAMES), rng.randint(3, 12), rng.randint(2, 7)
    return f"{name} reads {pages} pages every day. How many pages does {name} read in {days} days?", pages * days, 2


def how_much_more(rng):
    a, b = rng.randint(40, 95), rng.randint(10, 39)
    return f"How much more is {a} than {b}?", a - b, 2


def prices(rng):
    shirt, hat, k = rng.randint(5, 15), rng.randint(3, 9), rng.randint(2, 4)
    return (f"A shirt costs {shirt} dollars and a hat costs {hat} dollars. How many dollars do {k} shirts and "
            f"one hat cost?", k * shirt + hat, 3)


TEMPLATES = [percent, minutes, centimeters, sharing, clock, rate, how_much_more, prices]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--exclude", nargs="*", default=[], help="JSONL files whose problems are left out")
    args = ap.parse_args()
    try:
        taken = {json.loads(line)["problem"] for path in args.exclude
                 for line in open(path, encoding="utf-8") if line.strip()}
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: --exclude: {e}")
    rng = random.Random(args.seed)
    written, i = 0, 0
    while written < args.n:
        text, answer, level = TEMPLATES[i % len(TEMPLATES)](rng)
        if text not in taken:
            if args.exclude:
                taken.add(text)
            print(json.dumps({"id": f"mixed-{args.seed}-{i}", "problem": text, "answer": str(answer), "level": level}))
            written += 1
        i += 1


if __name__ == "__main__":
    main()
