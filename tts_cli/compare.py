"""`tts compare`: every (strategy, budget) over the same problems, as runs of one batch; the
summary (accuracy, pass@N, headroom, FLOPs per problem), the paper's Table 5 line, and the
accuracy-vs-compute plot (FLOPs on a log axis, one line per strategy).

Majority and Best-of-N sample independent paths, so one run at N_max = max(budgets) holds a run
at every smaller N: their curve (N = 1, 2, 4, ... N_max, and the budgets asked) is estimated
from that one run (pools.expected_accuracy: the expected accuracy over random N of its paths),
with FLOPs per problem scaled as N / N_max of the run's policy + verifier FLOPs. With both
strategies asked, one Best-of-N run serves both (majority ignores its scores).
"""

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


POOLED = ("majority", "best-of-n")  # strategies whose curve comes from one run at N_max


def plan_runs(names: list[str], budgets: list[int], out: Path, base,
              say: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """(runs, pooled). runs: "strategy N=n" -> batch.Run (its results file in `out`, its
    settings: `base`, a RunSettings, with this strategy and budget). CoT runs once (it does not
    depend on N); beam and DVTS skip budgets that are not a multiple of the beam width; majority
    and Best-of-N share one run at max(budgets) (Best-of-N when asked for, else majority).
    pooled: that run's key -> the strategies estimated from it."""
    from .batch import Run
    runs, pooled = {}, {}
    asked = [name for name in names if name in POOLED]
    for name in names:
        if name in POOLED:
            if not pooled:  # the one pool run, where the first of its strategies is listed
                n_max, strategy = max(budgets), "best-of-n" if "best-of-n" in asked else "majority"
                key = f"pool N={n_max}"
                runs[key] = Run(out / f"pool_{strategy}_n{n_max}.jsonl", base.but(strategy, n=n_max),
                                label=f"{strategy} N={n_max} (pool)")
                pooled[key] = asked
            continue
        for n in ([1] if name == "cot" else budgets):
            m = base.search.beam_width
            if name in ("beam", "dvts") and n % m:
                if say:
                    say(f"skipping {name} N={n}: not a multiple of the beam width {m}")
                continue
            runs[f"{name} N={n}"] = Run(out / f"{name}_n{n}.jsonl", base.but(name, n=n), label=f"{name} N={n}")
    return runs, pooled


def curve_budgets(budgets: list[int]) -> list[int]:
    """N = 1, 2, 4, ... up to max(budgets), and the budgets asked."""
    n_max = max(budgets)
    return sorted({2 ** k for k in range(n_max.bit_length()) if 2 ** k <= n_max} | set(budgets))


def write_summary(data: Path, runs: dict, summaries: dict, out: Path, pooled: dict | None = None,
                  budgets: list[int] | None = None) -> tuple[list[dict], dict | None]:
    """One row per run (per strategy and N for a pool run), the Table 5 comparison, summary.json
    and the plot in `out`."""
    from .grade import summarize
    rows = []
    for key, run in runs.items():
        if key in (pooled or {}):
            rows += pool_rows(run, summaries[key].records, pooled[key], curve_budgets(budgets or [run.settings.search.n]))
            continue
        s = summarize(summaries[key].records)
        rows.append({"strategy": run.settings.strategy, "n": run.settings.search.n, "accuracy": s["accuracy"],
                     "pass_at_n": s["pass_at_n"], "problems": s["graded"], "flops_per_problem": s["flops_per_problem"],
                     "flops": s["flops"], "seconds": s["seconds"], "results": str(run.path)})
    headroom_captured(rows)
    table5 = efficiency_table(rows)
    note = ESTIMATED_NOTE if any(r.get("estimated_from") for r in rows) else None
    (out / "summary.json").write_text(json.dumps({"data": str(data), "rows": rows, "efficiency": table5,
                                                  "estimated": note}, indent=1))
    plot_accuracy_vs_flops(rows, out / "accuracy_vs_flops.png", title=data.name, caption=note)
    return rows, table5


ESTIMATED_NOTE = ("majority and best-of-n at N < N_max are estimated from one run at N_max (the expected accuracy "
                  "over random N of its paths); their FLOPs per problem are N / N_max of that run's policy + "
                  "verifier FLOPs")


def pool_rows(run, records: list[dict], strategies: list[str], ns: list[int]) -> list[dict]:
    """The rows of the strategies estimated from one run at N_max, at each N of `ns`: accuracy
    (with a 90% bootstrap interval over problems), pass@N, and FLOPs and engine time scaled by
    N / N_max."""
    from .grade import summarize
    from .pools import bootstrap_interval, expected_accuracy, pools_from_records
    pools = pools_from_records(records)
    s = summarize(records)
    n_max, search = run.settings.search.n, run.settings.search
    rows = []
    for strategy in strategies:
        for n in ns:
            row = {"strategy": strategy, "n": n, "accuracy": None, "pass_at_n": None, "problems": len(pools),
                   "flops_per_problem": (s["flops_per_problem"] or 0.0) * n / n_max, "flops": s["flops"] * n / n_max,
                   "seconds": round(s["seconds"] * n / n_max, 2), "results": str(run.path), "estimated_from": n_max}
            if pools:
                method = "majority" if strategy == "majority" else search.selection
                accuracy = expected_accuracy(pools, method, n, aggregation=search.aggregation)
                interval = bootstrap_interval(accuracy.per_problem)
                row.update(accuracy=round(accuracy.mean, 4), lo=round(interval.lo, 4), hi=round(interval.hi, 4),
                           pass_at_n=round(expected_accuracy(pools, "pass", n).mean, 4))
            rows.append(row)
    return rows


def plot_accuracy_vs_flops(rows: list[dict], path: Path, title: str = "", caption: str | None = None) -> None:
    """One line per strategy; estimated points (from a pool run) dashed with open markers."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.0 if caption else 4.5), dpi=120)
    for name in dict.fromkeys(r["strategy"] for r in rows):
        pts = sorted((r["flops_per_problem"], r["accuracy"], r["n"]) for r in rows
                     if r["strategy"] == name and r["flops_per_problem"] and r["accuracy"] is not None)
        if not pts:
            continue
        xs, ys, ns = zip(*pts)
        estimated = any(r.get("estimated_from") for r in rows if r["strategy"] == name)
        ax.plot(xs, [100 * y for y in ys], marker="o", label=name + (" (estimated)" if estimated else ""),
                linestyle="--" if estimated else "-", markerfacecolor="none" if estimated else None)
        for x, y, n in pts:
            ax.annotate(f"N={n}", (x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs per problem (policy + verifier)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy vs compute{': ' + title if title else ''}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if caption:
        import textwrap
        fig.text(0.01, 0.01, textwrap.fill(caption, 110), fontsize=6, va="bottom")
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    else:
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
