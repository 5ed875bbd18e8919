"""The accuracy-vs-compute plot of `tts compare` (FLOPs on a log axis, one line per strategy)."""

from __future__ import annotations

from pathlib import Path


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
