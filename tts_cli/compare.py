"""`tts compare`: every (strategy, budget) over the same problems, as runs of one batch; the
summary (accuracy, pass@N, headroom, FLOPs per problem), the paper's Table 5 line, and the
accuracy-vs-compute plot (FLOPs on a log axis, one line per strategy)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


def prepare_folder(out: Path) -> None:
    """compare's --out is a folder (created); a file there, or a folder that cannot be made, is
    one error line before anything runs."""
    from .settings import SettingsError
    if out.exists() and not out.is_dir():
        raise SettingsError(f"{out}: is a file; compare writes a folder of results files, summary.json and a plot")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SettingsError(f"{out}: cannot make the folder ({e.strerror})")
    if not os.access(out, os.W_OK):
        raise SettingsError(f"{out}: the folder is not writable")


def plan_runs(names: list[str], budgets: list[int], out: Path, base, say: Callable[[str], None] | None = None) -> dict:
    """"strategy N=n" -> batch.Run (its results file in `out`, its settings: `base`, a
    RunSettings, with this strategy and budget). CoT runs once (it does not depend on N); beam
    and DVTS skip budgets that are not a multiple of the beam width."""
    from .batch import Run
    runs = {}
    for name in names:
        for n in ([1] if name == "cot" else budgets):
            m = base.search.beam_width
            if name in ("beam", "dvts") and n % m:
                if say:
                    say(f"skipping {name} N={n}: not a multiple of the beam width {m}")
                continue
            runs[f"{name} N={n}"] = Run(out / f"{name}_n{n}.jsonl", base.but(name, n=n), label=f"{name} N={n}")
    return runs


def write_summary(data: Path, runs: dict, summaries: dict, out: Path) -> tuple[list[dict], dict | None]:
    """One row per run, the Table 5 comparison, summary.json and the plot in `out`."""
    from .grade import summarize
    rows = []
    for key, run in runs.items():
        s = summarize(summaries[key].records)
        rows.append({"strategy": run.settings.strategy, "n": run.settings.search.n, "accuracy": s["accuracy"],
                     "pass_at_n": s["pass_at_n"], "problems": s["graded"], "flops_per_problem": s["flops_per_problem"],
                     "flops": s["flops"], "seconds": s["seconds"], "results": str(run.path)})
    headroom_captured(rows)
    table5 = efficiency_table(rows)
    (out / "summary.json").write_text(json.dumps({"data": str(data), "rows": rows, "efficiency": table5}, indent=1))
    plot_accuracy_vs_flops(rows, out / "accuracy_vs_flops.png", title=data.name)
    return rows, table5


def plot_accuracy_vs_flops(rows: list[dict], path: Path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    for name in dict.fromkeys(r["strategy"] for r in rows):
        pts = sorted((r["flops_per_problem"], r["accuracy"], r["n"]) for r in rows
                     if r["strategy"] == name and r["flops_per_problem"] and r["accuracy"] is not None)
        if not pts:
            continue
        xs, ys, ns = zip(*pts)
        ax.plot(xs, [100 * y for y in ys], marker="o", label=name)
        for x, y, n in pts:
            ax.annotate(f"N={n}", (x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs per problem (policy + verifier)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy vs compute{': ' + title if title else ''}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def efficiency_table(rows: list[dict]) -> dict | None:
    """The paper's Table 5 comparison: the smallest budget at which compute-optimal TTS (auto)
    reaches majority vote's best accuracy, against the budget majority needed for it."""
    maj = sorted((r for r in rows if r["strategy"] == "majority" and r["accuracy"] is not None), key=lambda r: r["n"])
    auto = sorted((r for r in rows if r["strategy"] == "auto" and r["accuracy"] is not None), key=lambda r: r["n"])
    if not maj or not auto:
        return None
    best = max(r["accuracy"] for r in maj)
    maj_row = next(r for r in maj if r["accuracy"] >= best)
    auto_row = next((r for r in auto if r["accuracy"] >= best), None)
    out = {"majority_best_accuracy": best, "majority_budget": maj_row["n"],
           "majority_flops": maj_row["flops_per_problem"], "auto_budget": None,
           "by_budget": {str(r["n"]): {s: next((x["accuracy"] for x in rows if x["strategy"] == s
                                                and (x["n"] == r["n"] or s == "cot")), None)
                                       for s in ("cot", "majority", "auto")} for r in maj}}
    if auto_row is not None:
        out.update(auto_budget=auto_row["n"], auto_flops=auto_row["flops_per_problem"],
                   budget_gain=round(maj_row["n"] / auto_row["n"], 2),
                   flops_gain=round(maj_row["flops_per_problem"] / auto_row["flops_per_problem"], 2)
                   if auto_row["flops_per_problem"] else None)
    return out


def headroom_captured(rows: list[dict]) -> None:
    """Adds each row's `headroom`: (accuracy - CoT) / (pass@N - CoT), the share of the gain a
    perfect verifier would make over greedy CoT with these candidates that the strategy made.
    None without a CoT row, or when pass@N does not exceed CoT (no headroom to capture)."""
    cot = next((r["accuracy"] for r in rows if r["strategy"] == "cot" and r["accuracy"] is not None), None)
    for r in rows:
        r["headroom"] = None
        if cot is None or r["strategy"] == "cot" or r["accuracy"] is None or r.get("pass_at_n") is None:
            continue
        if r["pass_at_n"] > cot:
            r["headroom"] = round((r["accuracy"] - cot) / (r["pass_at_n"] - cot), 4)
