"""`tts calibrate`: measure which search setting is compute-optimal per difficulty bin and budget.

1. Difficulty: sample K paths per problem and grade them: pass@1, binned.
2. Every candidate setting (strategy x budget x beam width x PRM-Vote/Max x aggregation) is
   graded on every problem, each into its own resumable results file (the same code as
   `tts grade`).
3. Per (bin, budget) the most accurate setting wins (ties: fewer FLOPs). The frontier is the
   set of settings no other setting beats on both accuracy and FLOPs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .datasets import Problem
from .difficulty import BIN_NAMES, Bins
from .grade import grade
from .profile import Choice, Profile


@dataclass(frozen=True)
class Setting:
    strategy: str
    n: int
    beam_width: int | None = None
    selection: str | None = None
    aggregation: str | None = None

    @property
    def key(self) -> str:
        parts = [self.strategy, f"n{self.n}"]
        if self.beam_width:
            parts.append(f"m{self.beam_width}")
        if self.selection:
            parts.append(self.selection)
        if self.aggregation:
            parts.append(self.aggregation)
        return "_".join(parts)

    def overrides(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def candidate_settings(budget: int, *, has_verifier: bool, beam_widths=(2, 4), selections=("vote", "max"),
                       aggregations=("last", "min")) -> list[Setting]:
    # CoT spends one greedy path of the budget: for a tiny policy on hard problems the cheapest
    # setting can be the best one, and the profile should be able to say so.
    out = [Setting("cot", budget), Setting("majority", budget)]
    if not has_verifier:
        return out
    for agg in aggregations:
        for sel in selections:
            out.append(Setting("best-of-n", budget, selection=sel, aggregation=agg))
        for m in beam_widths:
            if budget % m == 0 and m <= budget:
                out.append(Setting("beam", budget, beam_width=m, selection="vote", aggregation=agg))
                out.append(Setting("dvts", budget, beam_width=m, selection="vote", aggregation=agg))
    return out


def estimate_difficulties(problems: list[Problem], workdir: Path, estimate: Callable[[Problem], float]) -> dict:
    """pass@1 per problem id, resumable (workdir/difficulty.jsonl)."""
    from .grade import read_results
    path = workdir / "difficulty.jsonl"
    done = {(r["id"], r["line"]): r["pass_at_1"] for r in read_results(path) if "pass_at_1" in r}
    with open(path, "a", encoding="utf-8") as f:
        import json
        for p in problems:
            if (p.id, p.line) in done:
                continue
            value = estimate(p)
            f.write(json.dumps({"id": p.id, "line": p.line, "pass_at_1": value}) + "\n")
            f.flush()
            os.fsync(f.fileno())
            done[(p.id, p.line)] = value
    return done


def calibrate(problems: list[Problem], budgets: list[int], workdir: Path, *,
              estimate: Callable[[Problem], float], solve: Callable[[Setting, Problem], object],
              has_verifier: bool, bins: Bins = Bins(), policy: dict, prm: str | None,
              settings_for: Callable[[int], list[Setting]] | None = None,
              on_setting: Callable[[Setting, int, int], None] | None = None) -> Profile:
    workdir.mkdir(parents=True, exist_ok=True)
    difficulty = estimate_difficulties(problems, workdir, estimate)
    bin_of = {(p.id, p.line): bins.of(difficulty[(p.id, p.line)]) for p in problems}
    measured = []  # (setting, records)
    plan = [s for b in budgets for s in (settings_for(b) if settings_for else
                                         candidate_settings(b, has_verifier=has_verifier))]
    for i, setting in enumerate(plan):
        if on_setting:
            on_setting(setting, i, len(plan))
        summary = grade(problems, workdir / f"{setting.key}.jsonl", lambda p, s=setting: solve(s, p))
        if summary.interrupted:
            raise KeyboardInterrupt
        measured.append((setting, summary.records))

    choices = []
    for budget in budgets:
        for b in BIN_NAMES:
            best = None
            for setting, records in measured:
                if setting.n != budget:
                    continue
                rs = [r for r in records if bin_of.get((r.get("id"), r.get("line"))) == b and not r.get("error")]
                if not rs:
                    continue
                acc = sum(bool(r.get("correct")) for r in rs) / len(rs)
                flops = sum(r.get("compute", {}).get("flops", 0.0) for r in rs) / len(rs)
                cand = Choice(bin=b, budget=budget, strategy=setting.strategy, accuracy=round(acc, 4),
                              flops=flops, problems=len(rs), beam_width=setting.beam_width,
                              selection=setting.selection, aggregation=setting.aggregation)
                if best is None or (cand.accuracy, -cand.flops) > (best.accuracy, -best.flops):
                    best = cand
            if best is not None:
                choices.append(best)
    points = []
    for setting, records in measured:
        rs = [r for r in records if not r.get("error")]
        if rs:
            points.append({"setting": setting.key, "accuracy": round(sum(bool(r.get("correct")) for r in rs) / len(rs), 4),
                           "flops": sum(r.get("compute", {}).get("flops", 0.0) for r in rs) / len(rs)})
    frontier = [p for p in points
                if not any(q["accuracy"] >= p["accuracy"] and q["flops"] < p["flops"] or
                           q["accuracy"] > p["accuracy"] and q["flops"] <= p["flops"] for q in points)]
    frontier.sort(key=lambda p: p["flops"])
    counts = {b: sum(1 for v in bin_of.values() if v == b) for b in BIN_NAMES}
    return Profile(policy=policy, prm=prm, bins=bins, choices=choices, frontier=frontier,
                   meta={"problems": len(problems), "problems_per_bin": counts, "budgets": budgets,
                         "settings_measured": [s.key for s, _ in measured]})
