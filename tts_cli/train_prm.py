"""`tts train-prm`: a process reward head for your own policy, trained on this machine.

Four stages, each resumable (what a stage finished is on disk, and a rerun goes on from there):

1. Rollouts and step labels (rollouts.jsonl, one line per problem, appended as problems finish).
   The policy samples `samples` solutions per problem, with the prompt and step format the
   searches use, through the scheduler (many problems in flight, one decode for all their
   sequences). Math-Shepherd's labels: from the end of each step, `rollouts` completions forked
   from the step's KV (nothing is re-read); a step's soft label is the share of completions that
   reach the reference answer, its hard label whether any does. The sample's own continuation is
   one more completion from each of its steps, so the last step's label is the sample's outcome.
   `rollouts=0` gives outcome labels: every step labelled by its own path's final correctness.
2. Features (features/*.npz): the hidden state at each step's end from the base model, read in
   the value_head PRM format ("{problem}\\n{step1}\\n{step2}\\n..."), so the trained head is a
   value_head PRM that scores incrementally with the existing verifier code.
3. A logistic head (scikit-learn; L2 strength chosen by cross-validation over training problems,
   classes balanced), fitted on a split of problems: held-out problems never lend a step to
   training. Standardization is folded into the weights, so the head is just (weight, bias).
4. The report (report.json, reliability.png) on the held-out problems: step AUC and accuracy,
   AUC within each problem, a reliability table, what choosing by the head would have scored
   among each problem's samples, and the same for the baselines (the policy's confidence,
   optionally the policy as judge) on the same steps. The head and a registry entry are saved,
   so `--prm NAME` works in every command.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .datasets import Problem
from .engine import Engine, EngineError
from .grade import ResultsFile
from .grading import answers_match, extract_answer
from .search.common import Path as SearchPath
from .search.common import Search
from .search.scheduler import Job
from .search.types import Parallel, SearchConfig
from .verifiers.base import StepToScore
from .verifiers.head import ValueHeadPRM
from .verifiers.token_logit import IncrementalVerifier

SKLEARN_HINT = "tts train-prm needs scikit-learn: pip install 'tts_cli[train]'"


class TrainingError(Exception):
    """The data cannot train a head (one line for the user)."""


# --- 1. rollouts and step labels ------------------------------------------------------------

@dataclass
class LabelledSample:
    steps: list[str]
    answer: str | None
    correct: bool
    finish_reason: str | None
    confidence: list[float]  # per step: exp(mean token log-prob), the `confidence` verifier's score
    rollouts: list[int]  # per step: completions from its end (the sample's own continuation included)
    reached: list[int]  # per step: how many of them reached the reference answer

    @property
    def soft(self) -> list[float]:
        return [c / r for c, r in zip(self.reached, self.rollouts)]

    @property
    def hard(self) -> list[bool]:
        return [c > 0 for c in self.reached]


@dataclass
class ProblemRollouts:
    samples: list[LabelledSample]
    compute: dict = field(default_factory=dict)  # set by the scheduler


def rollout_slots(samples: int, rollouts: int) -> int:
    """Policy sequences one problem holds at once: each sample and its step's completions."""
    return samples * (1 + rollouts)


def label_rollouts(search: Search, config: SearchConfig, *, samples: int, rollouts: int, reference: str):
    """A scheduler job (written like a strategy): `samples` solutions of one problem, each step
    labelled by `rollouts` completions forked from its end."""
    run = search.run("majority", config, use_verifier=False)
    paths = run.spread(run.start(), samples)
    done = yield Parallel([_labelled_sample(run, p, rollouts, reference) for p in paths])
    return ProblemRollouts(samples=done)


def _labelled_sample(run, path: SearchPath, k: int, reference: str):
    rollouts, reached, confidence = [], [], []
    while path.node.state != "finished":
        (node,) = yield from run.step([path])
        lps = [lp for lp in run.logprobs.get(node.id, []) if math.isfinite(lp)]
        confidence.append(math.exp(sum(lps) / len(lps)) if lps else 0.0)
        hits = 0
        if k and node.state != "finished":
            forks = [SearchPath(seq, node) for seq in run.engine.fork(path.seq, k)]
            answers = yield Parallel([_complete(run, f) for f in forks])
            hits = sum(answers_match(a, reference) for a in answers)
        rollouts.append(k if node.state != "finished" else 0)
        reached.append(hits)
    answer = extract_answer(run.path_text(path.node)).answer
    correct = answers_match(answer, reference)
    steps = [n.step for n in run.path_nodes(path.node)]
    run.release([path])
    run.done_with_slots(1 + k)
    # The sample's own continuation is one more completion from every one of its steps.
    return LabelledSample(steps=steps, answer=answer, correct=correct, finish_reason=path.node.reason,
                          confidence=confidence, rollouts=[r + 1 for r in rollouts],
                          reached=[c + correct for c in reached])


def _complete(run, path: SearchPath):
    """Step a forked completion to its end; its answer."""
    while path.node.state != "finished":
        yield from run.step([path])
    answer = extract_answer(run.path_text(path.node)).answer
    run.release([path])
    return answer


def rollout_record(problem: Problem, out: ProblemRollouts) -> dict:
    return {"id": problem.id, "line": problem.line, "problem": problem.problem, "reference": problem.answer,
            "samples": [asdict(s) for s in out.samples], "compute": out.compute}


def sample_from_record(d: dict) -> LabelledSample:
    return LabelledSample(**{k: d[k] for k in LabelledSample.__dataclass_fields__})


def collect_rollouts(problems: list[Problem], path: Path, scheduler, config: SearchConfig, *, samples: int,
                     rollouts: int, on_record: Callable[[dict], None] | None = None) -> tuple[list[dict], int]:
    """Stage 1: roll out every problem not yet in `path`; records appended (fsynced) as problems
    finish. Returns (all records, problems skipped as already done). A problem whose search fails
    on its own (a prompt too long for the context) is recorded with its error."""
    from .grade import PROBLEM_ERRORS
    results = ResultsFile(path)
    try:
        todo = [p for p in problems if not results.has(p)]
        skipped = len(problems) - len(todo)
        slots = rollout_slots(samples, rollouts)
        jobs = (Job(p.problem, _job(samples, rollouts, p.answer), config, tag=p, slots=slots) for p in todo)
        for job, out in scheduler.run(jobs):
            if isinstance(out, BaseException):
                if not isinstance(out, PROBLEM_ERRORS):
                    raise out
                rec = {"id": job.tag.id, "line": job.tag.line, "problem": job.tag.problem, "error": str(out),
                       "samples": []}
            else:
                rec = rollout_record(job.tag, out)
            results.write(rec)
            if on_record:
                on_record(rec)
        return results.records, skipped
    finally:
        results.close()


def _job(samples: int, rollouts: int, reference: str):
    def label_problem(search, config):
        return label_rollouts(search, config, samples=samples, rollouts=rollouts, reference=reference)
    return label_problem


# --- 2. features ---------------------------------------------------------------------------------

class HiddenStateReader(ValueHeadPRM):
    """The value_head PRM's text, read as hidden states instead of scores: the features a
    value_head is applied to when it scores, so training and scoring see the same vectors."""

    name = "hidden states"

    def __init__(self, engine: Engine):
        if not engine.ctx.embeddings:
            raise EngineError("reading hidden states needs an engine created with embeddings=True")
        IncrementalVerifier.__init__(self, engine)

    def read(self, seqs):
        return list(self.engine.hidden_states(seqs))


def step_features(reader: IncrementalVerifier, records: list[dict]) -> list[np.ndarray]:
    """What `reader` reads at the end of every step of every sample, per record (rows in sample
    then step order): hidden states (HiddenStateReader) or scores (any incremental verifier,
    e.g. the judge). The records' problems are read side by side, depth by depth; a step's text
    extends its parent's sequence (each problem's text is read once)."""
    keys = [("features", i) for i in range(len(records))]
    out = [[] for _ in records]
    try:
        for key, rec in zip(keys, records):
            reader.begin(key, rec["problem"])
        depth = 0
        while True:
            items, where = [], []
            for key, rec, rows in zip(keys, records, out):
                for s, sample in enumerate(rec["samples"]):
                    if depth < len(sample["steps"]):
                        node = s * 10_000 + depth + 1
                        items.append(StepToScore(key=key, node_id=node, parent_id=node - 1 if depth else 0,
                                                 text=sample["steps"][depth], logprobs=[]))
                        where.append((rows, s, depth))
            if not items:
                break
            for (rows, s, d), h in zip(where, reader.score(items)):
                rows.append((s, d, np.asarray(h, dtype=np.float32)))
            for key, rec in zip(keys, records):  # parents will not be extended again
                reader.forget(key, [s * 10_000 + depth for s in range(len(rec["samples"])) if depth])
            depth += 1
    finally:
        for key in keys:
            reader.end(key)
    return [np.stack([h for _, _, h in sorted(rows, key=lambda r: (r[0], r[1]))])
            if rows else np.zeros((0,), np.float32) for rows in out]


class FeatureStore:
    """Hidden states per problem id, in shards written whole (a rename), so a killed run keeps
    every finished shard and redoes only the one it was writing."""

    def __init__(self, folder: Path, base: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.rows: dict[str, np.ndarray] = {}
        for part in sorted(self.folder.glob("part-*.npz")):
            with np.load(part, allow_pickle=False) as data:
                if str(data["base"]) != base:
                    raise TrainingError(f"{part}: features of another base model ({data['base']}); "
                                        f"delete {self.folder} or use another --dir")
                for pid, start, stop in zip(data["ids"], data["starts"], data["stops"]):
                    self.rows[str(pid)] = data["x"][start:stop]

    def add(self, ids: list[str], arrays: list[np.ndarray]) -> None:
        starts = np.cumsum([0] + [len(a) for a in arrays])
        n = len(list(self.folder.glob("part-*.npz")))
        tmp = self.folder / f".part-{n:05d}.npz"
        with open(tmp, "wb") as f:
            np.savez(f, x=np.concatenate(arrays) if arrays else np.zeros((0, 0), np.float32),
                     ids=np.array(ids), starts=starts[:-1], stops=starts[1:], base=np.array(self.base))
        tmp.rename(self.folder / f"part-{n:05d}.npz")
        self.rows.update(zip(ids, arrays))


def collect_features(records: list[dict], store: FeatureStore, reader: HiddenStateReader, *, chunk: int,
                     on_chunk: Callable[[int], None] | None = None) -> None:
    """Stage 2: features for every record not yet in the store, `chunk` problems per shard."""
    todo = [r for r in records if r["id"] not in store.rows and r.get("samples")]
    for i in range(0, len(todo), chunk):
        part = todo[i:i + chunk]
        store.add([r["id"] for r in part], step_features(reader, part))
        if on_chunk:
            on_chunk(len(part))


# --- 3. the split and the fit -----------------------------------------------------------------

def split_problems(ids: Iterable[str], holdout: float, seed: int = 0) -> set[str]:
    """The held-out problem ids: each problem is held out when a hash of (seed, id) falls in the
    first `holdout` of the hash range, so the split does not depend on the file's order and a
    problem added later never moves another across it. With two or more problems, each side
    gets at least one (the problem nearest the threshold crosses)."""
    if not 0.0 < holdout < 1.0:
        raise TrainingError(f"--holdout must be between 0 and 1, got {holdout}")
    ids = sorted(set(ids))
    u = {i: int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:15], 16) / 16 ** 15 for i in ids}
    held = {i for i in ids if u[i] < holdout}
    if len(ids) >= 2 and not held:
        held = {min(ids, key=u.get)}
    if len(ids) >= 2 and len(held) == len(ids):
        held.discard(max(ids, key=u.get))
    return held


@dataclass
class StepTable:
    """Every labelled step as rows: features, labels, and where it came from."""

    x: np.ndarray
    soft: np.ndarray
    hard: np.ndarray
    outcome: np.ndarray  # the sample's final correctness
    confidence: np.ndarray
    problem: np.ndarray  # problem id per row
    sample: np.ndarray
    last: np.ndarray  # the sample's last step

    @property
    def label(self) -> np.ndarray:
        """The binary label metrics use: the step more likely leads to the answer than not."""
        return self.soft >= 0.5

    def subset(self, mask: np.ndarray) -> "StepTable":
        return StepTable(**{k: v[mask] for k, v in asdict_arrays(self).items()})


def asdict_arrays(t: StepTable) -> dict[str, np.ndarray]:
    return {k: getattr(t, k) for k in StepTable.__dataclass_fields__}


def step_table(records: list[dict], features: dict[str, np.ndarray]) -> StepTable:
    cols: dict[str, list] = {k: [] for k in StepTable.__dataclass_fields__ if k != "x"}
    xs = []
    for rec in records:
        if not rec.get("samples") or rec["id"] not in features:
            continue
        x = features[rec["id"]]
        row = 0
        for s, d in enumerate(rec["samples"]):
            sample = sample_from_record(d)
            for j in range(len(sample.steps)):
                xs.append(x[row])
                row += 1
                cols["soft"].append(sample.soft[j])
                cols["hard"].append(sample.hard[j])
                cols["outcome"].append(sample.correct)
                cols["confidence"].append(sample.confidence[j])
                cols["problem"].append(rec["id"])
                cols["sample"].append(s)
                cols["last"].append(j == len(sample.steps) - 1)
    if not xs:
        raise TrainingError("no labelled steps: every problem failed or produced no step")
    return StepTable(x=np.stack(xs).astype(np.float64), **{k: np.array(v) for k, v in cols.items()})


@dataclass
class Head:
    weight: np.ndarray
    bias: float
    c: float  # the L2 strength chosen (scikit-learn's C: smaller is stronger)
    cv: dict  # C -> cross-validated scores

    def score(self, x: np.ndarray) -> np.ndarray:
        """What ValueHeadPRM computes from a hidden state."""
        return 1.0 / (1.0 + np.exp(-(x @ self.weight + self.bias)))

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, weight=self.weight.astype(np.float32), bias=np.array([self.bias], np.float32))


C_GRID = (0.001, 0.01, 0.1, 1.0)


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise TrainingError(SKLEARN_HINT)


def _fit(train: StepTable, c: float):
    """Logistic regression on standardized features against the soft labels (each row counts as
    a positive with weight p and a negative with weight 1 - p: cross-entropy with soft targets),
    the two classes weighted to equal totals. Returns (weight, bias) on raw features."""
    from sklearn.linear_model import LogisticRegression
    mean, std = train.x.mean(axis=0), train.x.std(axis=0) + 1e-6
    z = (train.x - mean) / std
    pos, neg = train.soft.sum(), (1 - train.soft).sum()
    if pos <= 0 or neg <= 0:
        raise TrainingError(f"every training step has the same label ({'right' if neg <= 0 else 'wrong'}): "
                            "nothing to learn; use more problems or samples, or easier ones")
    x2 = np.concatenate([z, z])
    y2 = np.concatenate([np.ones(len(z)), np.zeros(len(z))])
    w2 = np.concatenate([train.soft * (pos + neg) / (2 * pos), (1 - train.soft) * (pos + neg) / (2 * neg)])
    keep = w2 > 0
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(x2[keep], y2[keep], sample_weight=w2[keep])
    w = model.coef_[0] / std
    b = float(model.intercept_[0] - (model.coef_[0] * mean / std).sum())
    return w, b


def _platt(logits: np.ndarray, soft: np.ndarray) -> tuple[float, float]:
    """(a, c) so that sigmoid(a * logit + c) fits the soft labels (Platt scaling, unweighted)."""
    from sklearn.linear_model import LogisticRegression
    z = logits[:, None]
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(np.concatenate([z, z]), np.concatenate([np.ones(len(z)), np.zeros(len(z))]),
              sample_weight=np.concatenate([soft, 1 - soft]))
    return float(model.coef_[0][0]), float(model.intercept_[0])


def fit_head(train: StepTable, *, folds: int = 5, grid: Iterable[float] = C_GRID) -> Head:
    """The head, with C chosen by cross-validation over training problems (never steps): the
    within-problem AUC of the final step (what choosing among samples needs), then pooled AUC."""
    _sklearn()
    from sklearn.model_selection import GroupKFold
    problems = np.unique(train.problem)
    cv, held_logits = {}, {}
    if len(problems) >= 3:
        k = min(folds, len(problems))
        splits = list(GroupKFold(n_splits=k).split(train.x, groups=train.problem))
        for c in grid:
            logits = np.zeros(len(train.soft))
            try:
                for tr, te in splits:
                    w, b = _fit(train.subset(np.isin(np.arange(len(train.soft)), tr)), c)
                    logits[te] = train.x[te] @ w + b
            except TrainingError:  # a fold with one class: this grid point cannot be judged
                continue
            scored = 1 / (1 + np.exp(-logits))
            held_logits[c] = logits
            cv[c] = {"within_problem_auc": within_problem_auc(scored, train), "step_auc": auc(scored, train.label)}
    best = max(cv, key=lambda c: (_nan_low(cv[c]["within_problem_auc"]), _nan_low(cv[c]["step_auc"]), -c)) \
        if cv else 0.1
    w, b = _fit(train, best)
    if best in held_logits:
        # Balancing the classes moves the scores away from the label rates; Platt scaling on the
        # cross-validated logits (not the training fit's own, which overfit) puts them back, so a
        # score reads as the chance that the step leads to the answer. Folded into (w, b).
        a, c0 = _platt(held_logits[best], train.soft)
        w, b = w * a, b * a + c0
    return Head(weight=w, bias=b, c=best, cv={str(c): v for c, v in cv.items()})


def _nan_low(v: float | None) -> float:
    return -1.0 if v is None or math.isnan(v) else v


# --- 4. metrics and the report ------------------------------------------------------------

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
    n = max(1, out["problems"])
    return {"problems": out["problems"], **{k: round(out[k] / n, 4) for k in ("max", "vote", "majority", "pass_at_n")}}


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
                   trained: dict) -> dict:
    """A user-registry entry: the base model's GGUF (as its own entry finds it) with the head."""
    entry: dict = {"name": name, "role": "prm", "params": n_params}
    where = {k: base_entry[k] for k in ("bundled", "repo", "file", "path") if base_entry and k in base_entry}
    entry.update(where or {"path": str(base_path.resolve())})
    entry["prm"] = {"format": "value_head", "head_file": str(head_path.resolve())}
    entry["trained"] = trained
    return entry


def save_entry(registry_file: Path, entry: dict) -> None:
    """Add (or replace, by name) an entry in a user registry file."""
    import yaml

    from .yamlfile import read_yaml
    data = read_yaml(registry_file, "registry file", TrainingError) if registry_file.exists() else None
    data = data if isinstance(data, dict) and isinstance(data.get("models"), list) else {"models": []}
    data["models"] = [e for e in data["models"] if not (isinstance(e, dict) and e.get("name") == entry["name"])]
    data["models"].append(entry)
    registry_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = registry_file.with_name(registry_file.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    tmp.replace(registry_file)


# --- the whole run ---------------------------------------------------------------------------

@dataclass
class TrainSettings:
    samples: int = 8
    rollouts: int = 4  # 0: outcome labels
    holdout: float = 0.25
    seed: int = 0
    concurrency: int | None = None  # problems in flight while rolling out (None: fill a batch)
    baselines: tuple[str, ...] = ("confidence",)  # also "judge": the policy judging the held-out steps
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    context_per_path: int = 2048


class Progress:
    """What the run reports as it goes (the CLI draws it); the default says nothing."""

    def stage(self, name: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int = 1, note: str = "") -> None:
        pass


def train(problems: list[Problem], folder: Path, config: SearchConfig, settings: TrainSettings, *,
          policy_path: Path, base_path: Path, progress: Progress | None = None) -> tuple[Head, dict]:
    """Every stage, each going on from what `folder` holds; returns the head and the report."""
    from .engine import Model
    from .search.scheduler import Scheduler
    from .solver import PROMPT_CACHE_SLOTS, auto_concurrency, open_policy
    from .verifiers import JudgeVerifier

    _sklearn()  # before any compute: the fit needs it
    split_problems([], settings.holdout)  # a bad --holdout fails now, not after the rollouts
    progress = progress or Progress()
    folder.mkdir(parents=True, exist_ok=True)
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TrainingError(f"problem id {dup!r} appears twice; ids name problems in the split and the files")
    timings = {}

    # 1. rollouts and labels
    t0 = now()
    policy_model = Model(policy_path, n_gpu_layers=settings.n_gpu_layers)
    base_model = policy_model if base_path.resolve() == policy_path.resolve() else None
    try:
        need = rollout_slots(settings.samples, settings.rollouts)
        k = settings.concurrency or auto_concurrency(need, policy_model.offloaded)
        k = max(1, min(k, (256 - PROMPT_CACHE_SLOTS) // need))
        if need + PROMPT_CACHE_SLOTS > 256:
            raise TrainingError(f"--samples x (1 + --rollouts) = {need} sequences at once; llama.cpp allows 254")
        policy = open_policy(policy_model, config, slots=k * need + PROMPT_CACHE_SLOTS,
                             n_threads=settings.n_threads, context_per_path=settings.context_per_path)
        try:
            wanted = set(ids)
            done_before = len({r.get("id") for r in _existing(folder / "rollouts.jsonl")} & wanted)
            progress.stage("rollouts", len(problems), done_before)
            counts = {"samples": 0, "correct": 0}

            def on_record(rec):
                counts["samples"] += len(rec.get("samples", []))
                counts["correct"] += sum(bool(s["correct"]) for s in rec.get("samples", []))
                share = counts["correct"] / counts["samples"] if counts["samples"] else 0.0
                progress.advance(1, f"{share:.0%} of samples right")
            records, _ = collect_rollouts(problems, folder / "rollouts.jsonl", Scheduler(policy, None, max_searches=k),
                                          config, samples=settings.samples, rollouts=settings.rollouts,
                                          on_record=on_record)
        finally:
            policy.close()
        records = [r for r in records if r["id"] in wanted]
        timings["rollouts_seconds"] = round(now() - t0, 1)

        # 2. features from the base model, in the value_head format
        t0 = now()
        base_model = base_model or Model(base_path, n_gpu_layers=settings.n_gpu_layers)
        store = FeatureStore(folder / "features", str(base_path.resolve()))
        chunk = max(1, 32 // (settings.samples + 1))
        engine = _reading_engine(base_model, records, chunk, settings, embeddings=True)
        try:
            todo = [r for r in records if r["id"] not in store.rows and r.get("samples")]
            progress.stage("features", len(todo))
            collect_features(records, store, HiddenStateReader(engine), chunk=chunk,
                             on_chunk=lambda n: progress.advance(n))
            feature_tokens = engine.stats.tokens_evaluated
        finally:
            engine.close()
        timings["features_seconds"] = round(now() - t0, 1)

        # 3. split and fit
        t0 = now()
        heldout = split_problems([r["id"] for r in records if r.get("samples")], settings.holdout, settings.seed)
        table = step_table(records, store.rows)
        test_mask = np.isin(table.problem, list(heldout))
        train_t, test_t = table.subset(~test_mask), table.subset(test_mask)
        progress.stage("fit", 1)
        head = fit_head(train_t)
        progress.advance(1)
        timings["fit_seconds"] = round(now() - t0, 1)

        # 4. report, with the baselines on the same held-out steps
        by_id = {r["id"]: r for r in records}
        scores = head.score(test_t.x)
        report = {"head": evaluate(scores, test_t, by_id), "baselines": {}}
        if "confidence" in settings.baselines:
            report["baselines"]["confidence"] = evaluate(test_t.confidence, test_t, by_id)
        if "judge" in settings.baselines:
            t0 = now()
            test_records = [r for r in records if r["id"] in heldout and r["id"] in store.rows]
            engine = _reading_engine(policy_model, test_records, chunk, settings, embeddings=False)
            try:
                judge = JudgeVerifier(engine)
                progress.stage("judge baseline", len(test_records))
                parts = []
                for i in range(0, len(test_records), chunk):
                    parts += step_features(judge, test_records[i:i + chunk])
                    progress.advance(len(test_records[i:i + chunk]))
                report["baselines"]["judge"] = evaluate(np.concatenate(parts), test_t, by_id)
            finally:
                engine.close()
            timings["judge_seconds"] = round(now() - t0, 1)
        rows = reliability(scores, test_t.soft)
        report.update(
            policy=str(policy_path), base=str(base_path), base_params=base_model.n_params, labels="outcome" if settings.rollouts == 0 else "mc",
            samples=settings.samples, rollouts=settings.rollouts, temperature=config.temperature,
            prompt=config.prompt, seed=settings.seed, c=head.c, cross_validation=head.cv,
            problems={"train": int(len(np.unique(train_t.problem))), "heldout": int(len(np.unique(test_t.problem)))},
            steps={"train": int(len(train_t.soft)), "heldout": int(len(test_t.soft)),
                   "positive_share_train": round(float(train_t.label.mean()), 4)},
            labels_summary=summarize_labels(records), reliability=rows,
            cost={**timings, "rollouts": rollout_compute(records), "feature_tokens": int(feature_tokens)},
            heldout_ids=sorted(heldout))
        head.save(folder / "head.npz")
        write_report(folder, report, rows, f"held-out steps ({report['steps']['heldout']}), "
                                           f"AUC {report['head']['step_auc']}")
        return head, report
    finally:
        if base_model is not None and base_model is not policy_model:
            base_model.close()
        policy_model.close()


def _existing(path: Path):
    from .grade import read_results
    return read_results(path) if path.exists() else []


def _reading_engine(model, records: list[dict], chunk: int, settings: TrainSettings, *, embeddings: bool) -> Engine:
    """An engine that reads `chunk` problems' samples side by side (unified KV: a problem's
    samples share its text). Sized from the texts themselves."""
    def cells(rec):
        text = model.tokenize(rec["problem"])
        return len(text) + 64 + sum(len(model.tokenize("".join(s["steps"]))) + 16 * (len(s["steps"]) + 1) + 96
                                    for s in rec.get("samples", []))
    sizes = sorted((cells(r) for r in records), reverse=True)
    n_ctx = max(1024, sum(sizes[:chunk]) + 512)
    n_seq = chunk * (2 * settings.samples + 1) + 8
    return Engine(model, n_ctx=n_ctx, n_seq_max=min(256, n_seq), kv_unified=True, n_threads=settings.n_threads,
                  embeddings=embeddings)


def now() -> float:
    return time.perf_counter()
