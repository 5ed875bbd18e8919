"""Writes a second family of arithmetic word problems, "stories", for measuring transfer: none of
its templates, names, objects or phrasings is in arith-train/arith-calib/arith-test
(make_arith.py), so nothing learned or tuned on those has seen them.

Six templates, one or two operations each, with multiplication in most (the kind of step
where a small policy states facts such as "4 * 6 = 24"):
  price x quantity; price x quantity + another price; rows x seats - empty seats;
  speed x hours; (a + b) x c shared; total - (a x b) left over.
Deterministic for a seed.

    python benchmarks/make_stories.py --n 64 --seed 11 > benchmarks/data/stories-test.jsonl
"""

from __future__ import annotations

import argparse
import json
import random

PEOPLE = ["Nora", "Omar", "Priya", "Lukas", "Chen", "Fatima", "Diego", "Yuki"]
FOODS = ["muffins", "tacos", "dumplings", "pretzels", "waffles", "cupcakes"]
PLACES = ["the library", "the museum", "the bakery", "the stadium"]


def story(rng: random.Random, kind: int) -> tuple[str, int]:
    who, food, place = rng.choice(PEOPLE), rng.choice(FOODS), rng.choice(PLACES)
    if kind == 0:
        price, qty = rng.randint(2, 9), rng.randint(3, 9)
        return f"One {food[:-1]} costs {price} dollars. {who} pays for {qty} of them. How many dollars does {who} pay?", price * qty
    if kind == 1:
        price, qty, extra = rng.randint(2, 6), rng.randint(2, 6), rng.randint(3, 15)
        return (f"{who} orders {qty} {food} at {price} dollars each and a drink for {extra} dollars. "
                f"What is the total bill in dollars?"), price * qty + extra
    if kind == 2:
        rows, seats, empty = rng.randint(3, 9), rng.randint(4, 9), rng.randint(1, 9)
        return (f"A hall at {place} has {rows} rows with {seats} chairs in every row. {empty} chairs are empty. "
                f"How many chairs are taken?"), rows * seats - empty
    if kind == 3:
        speed, hours = rng.randint(11, 60), rng.randint(2, 5)
        return f"A bus drives at {speed} kilometers per hour for {hours} hours. How many kilometers does it drive?", speed * hours
    if kind == 4:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 5)
        return (f"{who} bakes {a} trays of {food} in the morning and {b} trays in the evening. Each tray holds "
                f"{c} {food}. How many {food} does {who} bake?"), (a + b) * c
    total, a, b = rng.randint(40, 90), rng.randint(2, 6), rng.randint(2, 6)
    return (f"{who} has {total} stamps and puts {a} stamps on each of {b} letters. "
            f"How many stamps does {who} have left?"), total - a * b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    for i in range(args.n):
        text, answer = story(rng, i % 6)
        print(json.dumps({"id": f"story-{args.seed}-{i}", "problem": text, "answer": str(answer), "level": i % 6 + 1}))


if __name__ == "__main__":
    main()
