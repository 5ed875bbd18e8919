"""Writes a JSONL set of short arithmetic word problems that 100M-300M models can partly solve.

Three kinds, easy to hard for a tiny model: one addition or subtraction of two-digit numbers; a
one-step word problem (+, -, *); a two-step word problem. Deterministic for a seed.

    python benchmarks/make_arith.py --n 40 --seed 1 > arith.jsonl
"""

from __future__ import annotations

import argparse
import json
import random

NAMES = ["Sara", "Tom", "Ali", "Mia", "Ben", "Lea", "Sam", "Ana"]
THINGS = ["apples", "pencils", "stickers", "marbles", "books", "cards"]


def problem(rng: random.Random, kind: int) -> tuple[str, int]:
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    if kind == 0:
        a, b = rng.randint(10, 60), rng.randint(10, 39)
        if rng.random() < 0.5:
            return f"What is {a} + {b}?", a + b
        a, b = max(a, b), min(a, b)
        return f"What is {a} - {b}?", a - b
    if kind == 1:
        op = rng.choice("+-*")
        if op == "+":
            a, b = rng.randint(5, 40), rng.randint(2, 20)
            return f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b
        if op == "-":
            a, b = rng.randint(15, 50), rng.randint(2, 14)
            return f"{name} has {a} {thing} and gives away {b}. How many {thing} are left?", a - b
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return f"{name} buys {a} bags with {b} {thing} in each bag. How many {thing} is that?", a * b
    a, b, c = rng.randint(2, 6), rng.randint(2, 9), rng.randint(1, 9)
    return (f"{name} has {a} boxes of {b} {thing} and finds {c} more {thing}. "
            f"How many {thing} does {name} have in all?"), a * b + c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for i in range(args.n):
        kind = i % 3
        text, answer = problem(rng, kind)
        print(json.dumps({"id": f"arith-{args.seed}-{i}", "problem": text, "answer": str(answer), "level": kind + 1}))


if __name__ == "__main__":
    main()
