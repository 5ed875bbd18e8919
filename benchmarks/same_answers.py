"""Compare two `tts grade` results files problem by problem: how many answers (and candidate
answer lists) are the same. Used to measure determinism across --concurrency.

    python benchmarks/same_answers.py runs/maj4-k1.jsonl runs/maj4-k8.jsonl
"""

from __future__ import annotations

import json
import sys


def load(path: str) -> dict:
    out = {}
    for line in open(path, encoding="utf-8"):
        if line.strip():
            r = json.loads(line)
            out[(r["id"], r["line"])] = r
    return out


def main() -> None:
    a, b = load(sys.argv[1]), load(sys.argv[2])
    common = sorted(set(a) & set(b), key=lambda k: k[1])
    same_answer = sum(a[k].get("answer") == b[k].get("answer") for k in common)
    same_candidates = sum([c.get("answer") for c in a[k].get("candidates", [])] ==
                          [c.get("answer") for c in b[k].get("candidates", [])] for k in common)
    acc = [sum(bool(x[k].get("correct")) for k in common) for x in (a, b)]
    print(f"{len(common)} problems in both: same answer {same_answer}, same candidate answers {same_candidates}; "
          f"correct {acc[0]} vs {acc[1]}")
    for k in common:
        if a[k].get("answer") != b[k].get("answer"):
            print(f"  line {k[1]}: {a[k].get('answer')!r} vs {b[k].get('answer')!r}")


if __name__ == "__main__":
    main()
