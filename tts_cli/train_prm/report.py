"""Stage 4: how well scores rank and calibrate on held-out steps; what the run leaves behind (the
report, the registry entry)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..answers import answers_match
from .errors import TrainingError
from .rollouts import sample_from_record
from .steps import StepTable


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC, None when only one class is present."""
    labels = np.asarray(labels, bool)
    if labels.all() or not labels.any():
        return None
    from sklearn.metrics import roc_auc_score
    return round(float(roc_auc_score(labels, scores)), 4)


def within_problem_auc(scores: np.ndarray, t: StepTable) -> float | None:
    """Mean over problems that have both right and wrong samples of the AUC of the samples'
    last-step scores against their final correctness: how well the score ranks one problem's
    candidates, which is what choosing among them needs (pooled AUC also rewards telling easy
    problems from hard ones)."""
    values = []
    for pid in np.unique(t.problem):
        m = (t.problem == pid) & t.last
        a = auc(scores[m], t.outcome[m])
        if a is not None:
            values.append(a)
    return round(float(np.mean(values)), 4) if values else None


def selection(scores: np.ndarray, t: StepTable, records: dict[str, dict]) -> dict:
    """What choosing among each problem's samples would have scored: by the highest last-step
    score (PRM-Max), by summed scores per answer (PRM-Vote), by majority vote, and the oracle."""
    out = {"problems": 0, "max": 0, "vote": 0, "majority": 0, "pass_at_n": 0}
    ranks, random_ranks, contested_majority = [], [], 0
    for pid in np.unique(t.problem):
        m = (t.problem == pid) & t.last
        rec = records[pid]
        answers = [s["answer"] for s in rec["samples"]]
        right = [bool(s["correct"]) for s in rec["samples"]]
        by_sample = dict(zip(t.sample[m].tolist(), scores[m].tolist()))
        out["problems"] += 1
        out["pass_at_n"] += any(right)
        best = max(by_sample, key=by_sample.get)
        out["max"] += right[best]
        scored = list(by_sample)
        k = sum(right[i] for i in scored)
        contested = 0 < k < len(scored)  # some samples right, some wrong: where choosing matters
        if contested:
            order = sorted(scored, key=lambda i: -by_sample[i])
            ranks.append(next(r for r, i in enumerate(order, start=1) if right[i]))
            random_ranks.append((len(scored) + 1) / (k + 1))  # a random order's expected best rank
        groups: dict[str, list[int]] = {}
        for i, a in enumerate(answers):
            if a is None:
                continue
            key = next((g for g in groups if answers_match(a, g)), a)
            groups.setdefault(key, []).append(i)
        if groups:
            vote = max(groups, key=lambda g: sum(by_sample.get(i, 0.0) for i in groups[g]))
            majority = max(groups, key=lambda g: len(groups[g]))
            out["vote"] += right[groups[vote][0]]
            out["majority"] += right[groups[majority][0]]
            if contested:
                contested_majority += right[groups[majority][0]]
    n = max(1, out["problems"])
    c = max(1, len(ranks))
    return {"problems": out["problems"], **{k: round(out[k] / n, 4) for k in ("max", "vote", "majority", "pass_at_n")},
            # on the problems where some samples are right and some wrong: where the best right
            # sample ranks by this score (1: at the top), against a random order's expectation
            "contested": len(ranks), "right_on_top": round(sum(r == 1 for r in ranks) / c, 4),
            "mean_rank_of_best_right": round(float(np.mean(ranks)), 3) if ranks else None,
            "random_mean_rank": round(float(np.mean(random_ranks)), 3) if ranks else None,
            "majority_right_when_contested": round(contested_majority / c, 4)}


def reliability(scores: np.ndarray, soft: np.ndarray, bins: int = 10) -> list[dict]:
    """Steps grouped by predicted score: the mean score against the mean label in each bin."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = idx == b
        if m.any():
            rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "steps": int(m.sum()),
                         "predicted": round(float(scores[m].mean()), 3), "observed": round(float(soft[m].mean()), 3)})
    return rows


def evaluate(scores: np.ndarray, t: StepTable, records: dict[str, dict]) -> dict:
    return {"step_auc": auc(scores, t.label),
            "step_accuracy": round(float(((scores >= 0.5) == t.label).mean()), 4) if len(scores) else None,
            "within_problem_auc": within_problem_auc(scores, t),
            "selection": selection(scores, t, records)}


def plot_reliability(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfectly calibrated")
    ax.plot([r["predicted"] for r in rows], [r["observed"] for r in rows], marker="o", label="head")
    for r in rows:
        ax.annotate(str(r["steps"]), (r["predicted"], r["observed"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    ax.set_xlabel("predicted step score")
    ax.set_ylabel("observed label (share of rollouts that reach the answer)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize_labels(records: list[dict]) -> dict:
    samples = [sample_from_record(d) for r in records for d in r.get("samples", [])]
    steps = [x for s in samples for x in s.soft]
    return {"problems": sum(1 for r in records if r.get("samples")),
            "errors": sum(1 for r in records if r.get("error")),
            "samples": len(samples), "steps": len(steps),
            "sample_accuracy": round(sum(s.correct for s in samples) / len(samples), 4) if samples else None,
            "mean_step_label": round(float(np.mean(steps)), 4) if steps else None}


def rollout_compute(records: list[dict]) -> dict:
    tokens = {"prefilled": 0, "generated": 0, "evaluated": 0}
    seconds = flops = 0.0
    for r in records:
        c = r.get("compute") or {}
        p = c.get("policy", {})
        tokens["prefilled"] += p.get("tokens_prefilled", 0)
        tokens["generated"] += p.get("tokens_generated", 0)
        tokens["evaluated"] += p.get("tokens_evaluated", 0)
        seconds += p.get("seconds", 0.0)
        flops += c.get("flops", 0.0)
    return {"tokens": tokens, "engine_seconds": round(seconds, 1), "flops": flops}


def write_report(folder: Path, report: dict, rows: list[dict], title: str) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    if rows:
        plot_reliability(rows, folder / "reliability.png", title)


def registry_entry(name: str, base_entry: dict | None, base_path: Path, n_params: int, head_path: Path,
                   trained: dict, fmt: str = "value_head") -> dict:
    """A user-registry entry: the base model's GGUF (as its own entry finds it) with the head
    (fmt: value_head, or policy_head when the base is the policy and the head reads its decode)."""
    entry: dict = {"name": name, "role": "prm", "params": n_params}
    where = {k: base_entry[k] for k in ("bundled", "repo", "file", "path") if base_entry and k in base_entry}
    entry.update(where or {"path": str(base_path.resolve())})
    entry["prm"] = {"format": fmt, "head_file": str(head_path.resolve())}
    entry["trained"] = trained
    return entry


def save_entry(registry_file: Path, entry: dict) -> None:
    """Add (or replace, by name) an entry in a user registry file."""
    import yaml

    from ..yamlfile import read_yaml
    data = read_yaml(registry_file, "registry file", TrainingError) if registry_file.exists() else None
    data = data if isinstance(data, dict) and isinstance(data.get("models"), list) else {"models": []}
    data["models"] = [e for e in data["models"] if not (isinstance(e, dict) and e.get("name") == entry["name"])]
    data["models"].append(entry)
    registry_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = registry_file.with_name(registry_file.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    tmp.replace(registry_file)


