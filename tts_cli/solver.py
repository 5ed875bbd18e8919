"""Putting searches together: open the policy engine and the verifier, sized for the searches
that will run on them at once, and run them through the scheduler.

The CLI calls these; tests and scripts can too.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

from .engine import Engine, EngineError, Model
from .engine.llamacpp import device_memory
from .registry import RegistryError, default_model, load_registry, pull, resolve
from .search import USES_VERIFIER, ConfigError, SearchConfig
from .search.capacity import (GB, PROMPT_CACHE_SLOTS, MemoryPlan, plan_memory, policy_slots, searches_in_flight,
                              slots_needed, verifier_slots)
from .search.scheduler import Job, Scheduler, run_search
from .settings import DEFAULT_CONTEXT_PER_PATH, ModelSettings, RunSettings
from .verifiers import HEAD_FORMATS, POLICY_HEAD, ConfidenceVerifier, JudgeVerifier, Verifier, verifier_from_format
from .verifiers.arithmetic import ArithmeticVerifier, CombinedVerifier
from .verifiers.coverage import CoverageVerifier

ARITHMETIC = "arithmetic"
COVERAGE = "coverage"
BUILTIN_VERIFIERS = ("judge", "confidence", ARITHMETIC, COVERAGE)  # verifiers that need no model file of their own
FREE_VERIFIERS = ("confidence", ARITHMETIC, COVERAGE)  # ... and no engine of their own: read from the text

def open_policy(model: str | os.PathLike | Model, config: SearchConfig, *, strategy: str = "beam",
                concurrency: int = 1, n_gpu_layers: int | None = None, n_threads: int | None = None,
                context_per_path: int = DEFAULT_CONTEXT_PER_PATH, slots: int | None = None,
                hidden: bool = False) -> Engine:
    """The policy's engine. Its KV cache is split (one stream per sequence) whatever its size, so
    a path's arithmetic does not depend on how many other paths or problems share the context:
    the same seed gives the same answers at any --concurrency and budget. hidden: keep each
    sampled row's hidden state (for a policy_head verifier)."""
    slots = slots or policy_slots(slots_needed(strategy, config), concurrency)
    return Engine(model, n_ctx=slots * context_per_path, n_seq_max=slots, kv_unified=False,
                  n_gpu_layers=n_gpu_layers, n_threads=n_threads, seed=config.seed,
                  prompt_cache_slots=PROMPT_CACHE_SLOTS, hidden=hidden)


def open_verifier(spec: str | None, policy: Engine, config: SearchConfig, *, strategy: str = "beam",
                  concurrency: int = 1, n_gpu_layers: int | None = None, n_threads: int | None = None,
                  context_per_path: int = DEFAULT_CONTEXT_PER_PATH, prm_entry: dict | None = None,
                  prm_model: Model | None = None) -> Verifier | None:
    """spec: "confidence", "judge" (the policy model as judge), "arithmetic" (the arithmetic the
    steps state, checked), "coverage" (the share of the problem's numbers that arithmetic uses),
    "arithmetic+SPEC" (both: a false fact zeroes the other's score), or a
    PRM GGUF path described by `prm_entry` (a models.yaml entry with a `prm:` block)."""
    if spec is None:
        return None
    if spec == "confidence":
        return ConfidenceVerifier()
    if spec == ARITHMETIC:
        return ArithmeticVerifier()
    if spec == COVERAGE:
        return CoverageVerifier()
    if spec.startswith(ARITHMETIC + "+"):
        other = open_verifier(spec[len(ARITHMETIC) + 1:], policy, config, strategy=strategy, concurrency=concurrency,
                              n_gpu_layers=n_gpu_layers, n_threads=n_threads, context_per_path=context_per_path,
                              prm_entry=prm_entry, prm_model=prm_model)
        return CombinedVerifier(other)
    if is_policy_head(prm_entry):
        return open_policy_head(spec, policy, prm_entry)
    # A scoring context: node sequences for up to 2N paths per search; unified, since they
    # share prefixes.
    slots = verifier_slots(config, concurrency)
    n_ctx = concurrency * (config.n + 2) * context_per_path
    if spec == "judge":
        engine = Engine(policy.model, n_ctx=n_ctx, n_seq_max=slots, kv_unified=True, n_threads=n_threads)
        return JudgeVerifier(engine, name="judge")
    if prm_entry is None or "prm" not in prm_entry:
        raise EngineError(f"{spec}: no PRM format known for this model; describe it in models.yaml "
                          "(prm: {format: math_shepherd|rlhflow|judge})")
    fmt = prm_entry["prm"].get("format")
    engine = Engine(prm_model or Path(spec), n_ctx=n_ctx, n_seq_max=slots, kv_unified=True, n_gpu_layers=n_gpu_layers,
                    n_threads=n_threads, embeddings=fmt in HEAD_FORMATS, owns_model=True)
    try:
        return verifier_from_format(prm_entry["prm"], engine, name=prm_entry.get("name") or Path(spec).stem,
                                    head_dir=Path(spec).parent)
    except ValueError as e:
        engine.close()
        raise EngineError(str(e))


def is_policy_head(prm_entry: dict | None) -> bool:
    """Whether a registry entry is a value head on the policy's own model (read from its decode)."""
    return bool(prm_entry) and (prm_entry.get("prm") or {}).get("format") == POLICY_HEAD


def open_policy_head(spec: str, policy: Engine, prm_entry: dict) -> Verifier:
    """A policy_head verifier: no engine of its own; it reads the policy engine's hidden states."""
    name = prm_entry.get("name") or Path(spec).stem
    if not getattr(policy, "hidden", False):
        raise EngineError(f"{name}: a policy head scores steps from the policy's hidden states as it samples them; "
                          "it cannot score stored steps (use a value_head PRM to rescore)")
    try:
        return verifier_from_format(prm_entry["prm"], policy, name=name, head_dir=Path(spec).parent)
    except ValueError as e:
        raise EngineError(str(e))


def close(policy: Engine, verifier: Verifier | None) -> None:
    """Free a policy engine and its verifier (and the verifier's own engine, if it has one)."""
    if verifier is not None:
        verifier.close()
        if verifier.engine is not None:
            verifier.engine.close()
    policy.close()


class Session:
    """The policy and verifier a run names (resolved to files, the policy model loaded once);
    `open` sizes their engines for the searches that will run on them.

    models: the run's ModelSettings. registry: entries to resolve names with (default:
    models.yaml and the user's file). pull_missing: download a registry model missing here into
    the hub cache (Ray workers do, on their own node). lenient: a registry model that is not on
    this machine is named, not refused (the Ray driver, whose workers resolve on their nodes)."""

    def __init__(self, models: ModelSettings, registry: dict | None = None, pull_missing: bool = False,
                 lenient: bool = False):
        self.models = models
        self.registry = registry if registry is not None else load_registry(models.models_file)
        self.lenient = lenient
        if models.policy is None:
            self.policy_path = default_model()
        else:
            self.policy_path, _ = self._resolve(models.policy, pull_missing)
        # The verifier: --prm, else the policy as judge (used only by strategies that score steps);
        # "arithmetic+X" checks the steps' arithmetic on top of X.
        self.prm = models.prm or "judge"
        self.arithmetic = self.prm == ARITHMETIC or self.prm.startswith(ARITHMETIC + "+")
        self.base_prm = self.prm[len(ARITHMETIC) + 1:] if self.prm.startswith(ARITHMETIC + "+") else self.prm
        self.prm_path, self.prm_entry = None, None
        if self.base_prm not in BUILTIN_VERIFIERS:
            self.prm_path, self.prm_entry = self._resolve(self.base_prm, pull_missing)
        # A policy head reads the policy's own decode: it needs no model of its own, and only fits
        # the policy it was trained on.
        self.policy_head = is_policy_head(self.prm_entry)
        self.context = models.context_per_path or DEFAULT_CONTEXT_PER_PATH
        self.model: Model | None = None
        self.memory = None  # the MemoryPlan `open` sized the engines by

    def _resolve(self, name: str, pull_missing: bool):
        try:
            return resolve(name, self.registry)
        except RegistryError:
            entry = self.registry.get(name)
            if self.lenient and entry is not None:
                return Path(name), entry
            if not pull_missing or entry is None or not entry.get("repo"):
                raise
            return pull(entry), entry

    def load(self) -> Model:
        if self.model is None:
            self.model = Model(self.policy_path, n_gpu_layers=self.models.gpu_layers)
        return self.model

    def open(self, plans: list, concurrency: int | None = 1, verifier: bool = False) -> Scheduler:
        """A scheduler on a policy engine and verifier sized for `concurrency` searches of the
        given (strategy, config) pairs at once (None: as many as fill a batch). The verifier is
        opened when a plan scores steps, or when `verifier` says so."""
        model = self.load()
        need = max(slots_needed(s, c) for s, c in plans)
        uses = verifier or any(s in USES_VERIFIER for s, _ in plans)
        model_verifier = uses and self.base_prm not in FREE_VERIFIERS and not self.policy_head
        k = searches_in_flight(need, concurrency, model.offloaded, model_verifier=model_verifier)
        biggest = max((c for _, c in plans), key=lambda c: c.n * (2 if c.lookahead else 1))
        self.check_policy_head()
        prm_model = (Model(self.prm_path, n_gpu_layers=self.models.gpu_layers)
                     if uses and self.prm_path and not self.policy_head else None)
        try:
            verifier_cell = (prm_model or model).kv_bytes_per_cell if model_verifier else 0
            self.memory = self.plan_memory(model, need, biggest.n, k, concurrency, verifier_cell)
            k, self.context = self.memory.searches, self.memory.context
            threads = self.models.threads
            policy = open_policy(model, biggest, slots=policy_slots(need, k), n_threads=threads,
                                 context_per_path=self.context, hidden=uses and self.policy_head)
        except BaseException:
            if prm_model is not None:
                prm_model.close()
            raise
        spec = self.base_prm if self.base_prm in BUILTIN_VERIFIERS else str(self.prm_path)
        if self.arithmetic and self.base_prm != ARITHMETIC:
            spec = f"{ARITHMETIC}+{spec}"
        try:
            verifier = open_verifier(spec if uses else None, policy, biggest, concurrency=k,
                                     n_gpu_layers=self.models.gpu_layers, n_threads=threads,
                                     context_per_path=self.context, prm_entry=self.prm_entry, prm_model=prm_model)
        except BaseException:
            policy.close()
            if prm_model is not None:
                prm_model.close()
            raise
        # The engine holds k searches' paths; more searches may be in flight while some finish
        # their last paths (the scheduler admits by free slots).
        scheduler = Scheduler(policy, verifier, max_searches=4 * k)
        scheduler.concurrency = k
        return scheduler

    def check_policy_head(self) -> None:
        """A policy head is a head on one model's hidden states: that model must be the policy."""
        if self.policy_head and Path(str(self.prm_path)).resolve() != Path(str(self.policy_path)).resolve():
            raise EngineError(f"{self.base_prm}: a policy head reads the hidden states of {Path(str(self.prm_path)).name}, "
                              f"the model it was trained on; the policy is {Path(str(self.policy_path)).name}")

    def plan_memory(self, model: Model, need: int, budget: int, searches: int, asked: int | None,
                    verifier_cell: int) -> MemoryPlan:
        """The searches in flight and cells per path that fit the memory free (--memory, else
        what the device reports once the policy is loaded)."""
        if self.models.memory is not None:
            free, where = self.models.memory * GB, "stated with --memory"
        else:
            free, where = device_memory(model.offloaded)
        return plan_memory(free, per_search=need, budget=budget, policy_cell=model.kv_bytes_per_cell,
                           verifier_cell=verifier_cell, asked_searches=asked, wanted_searches=searches,
                           context=self.models.context_per_path, default_context=self.context, where=where)

    def fit_context(self, problem: str) -> None:
        """Room for a long problem: each path's context (its own KV stream) holds the prompt
        plus at least 1024 tokens of solution and template."""
        self.context = max(self.context, len(self.load().tokenize(problem)) + 1024)

    def job(self, tag, problem, strategy: str, cfg: SearchConfig) -> Job:
        """A scheduler Job for one search of `problem` (a datasets.Problem), tagged `tag`."""
        return Job(problem.problem, strategy, self.prepare(strategy, cfg), tag=tag)

    def finished(self, job: Job, out):
        """A search's result with the models it ran on in its config (an exception as it is)."""
        if not isinstance(out, BaseException):
            out.config = {**self.describe(job.strategy), **out.config}
        return out

    def solve_many(self, scheduler: Scheduler, pairs, job_for):
        """Run (key, problem) pairs as searches; yield ((key, problem), result or exception) as
        each ends. job_for(key) gives (strategy, config)."""
        jobs = (self.job((key, problem), problem, *job_for(key)) for key, problem in pairs)
        for job, out in scheduler.run(jobs):
            yield job.tag, self.finished(job, out)

    def solve(self, scheduler: Scheduler, strategy: str, problem: str, config: SearchConfig, on_event=None):
        """One search (tts solve)."""
        try:
            result = run_search(strategy, problem, scheduler.engine, scheduler.verifier,
                                self.prepare(strategy, config), on_event)
        except ValueError as e:  # an impossible combination of options
            raise ConfigError(str(e))
        result.config = {**self.describe(strategy), **result.config}
        return result

    def prepare(self, strategy: str, cfg: SearchConfig) -> SearchConfig:
        """auto without --profile uses the profile calibrate saved for this policy and verifier."""
        if strategy == "auto" and not cfg.profile:
            return replace(cfg, profile=self.saved_profile())
        return cfg

    @staticmethod
    def close(scheduler: Scheduler) -> None:
        close(scheduler.engine, scheduler.verifier)

    def verifier_name(self) -> str:
        """The name the verifier reports (what profiles are matched against)."""
        if self.base_prm in BUILTIN_VERIFIERS:
            base = self.base_prm
        else:
            base = (self.prm_entry or {}).get("name") or Path(str(self.prm_path)).stem
        return f"{ARITHMETIC}+{base}" if self.arithmetic and base != ARITHMETIC else base

    def saved_profile(self) -> str | None:
        """The profile `tts calibrate` saved for this policy and verifier, if any."""
        from .profile import saved_profile_path
        path = saved_profile_path(str(self.policy_path), self.verifier_name())
        return str(path) if path.exists() else None

    def describe(self, strategy: str) -> dict:
        """The models part of a result's `config`: what was loaded (the verifier only for a
        strategy that scores steps)."""
        models = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.models).items()}
        prm = None
        if strategy in USES_VERIFIER:
            prm = self.prm if self.prm_path is None else \
                (f"{ARITHMETIC}+{self.prm_path}" if self.arithmetic else str(self.prm_path))
        return {**models, "strategy": strategy, "policy": str(self.policy_path), "prm": prm,
                "context_per_path": self.context}

    def identity(self, strategy: str, cfg: SearchConfig) -> dict:
        """What a results file's header records of a run: everything that changes its answers
        (the strategy, every search setting it reads, the models by file name and size, the
        decisions auto reads from its profile), and nothing that does not (threads, concurrency, Ray)."""
        from .search.strategies import FIELDS_READ
        cfg = self.prepare(strategy, cfg)
        read = FIELDS_READ.get(strategy, set(asdict(cfg)))
        search = {k: v for k, v in asdict(cfg).items() if k in read and k != "profile"}
        if not search.get("repair"):
            search.pop("repair", None)  # as runs before --repair existed recorded it: a resume goes on
        out = {"strategy": strategy, **search, "context_per_path": self.context,
               "policy": file_identity(self.policy_path)}
        if strategy in USES_VERIFIER:
            out["verifier"] = self.verifier_identity()
        if strategy == "auto":
            out["profile"] = profile_identity(Path(cfg.profile)) if cfg.profile else None
        return out

    def verifier_identity(self) -> dict:
        if self.base_prm in BUILTIN_VERIFIERS:
            return {"name": self.verifier_name()}
        out = {"name": self.verifier_name(), **file_identity(Path(str(self.prm_path)))}
        head = (self.prm_entry or {}).get("prm", {}).get("head_file")
        if head:  # a trained head changes while its base GGUF does not
            out["head"] = file_identity(Path(str(self.prm_path)).parent / head, content=True)
        return out

    def info(self) -> dict:
        """What a run's reports name: the policy file, its size, and the verifier."""
        return {"policy": str(self.policy_path), "policy_name": self.policy_path.stem,
                "params": self.model.n_params if self.model else None, "verifier": self.verifier_name()}


def file_identity(path: Path, content: bool = False) -> dict:
    """A file as a results header names it: its name and size (a model's bytes are too many to
    hash on every run), or a hash of its content (`content`: small files such as a profile or a
    head). A file not on this machine is named alone."""
    out: dict = {"file": path.name}
    try:
        if content:
            import hashlib
            out["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        else:
            out["bytes"] = path.stat().st_size
    except OSError:
        pass
    return out


def profile_identity(path: Path) -> dict:
    """auto's profile as a results header names it: its name and a hash of the decisions auto
    reads from it (Profile.decisions_digest), not of its bytes: calibrate saving the same choices
    again (a new `created`, new held-out figures) leaves a run's file that run's."""
    from .profile import Profile, ProfileError
    try:
        return {"file": path.name, "decisions_sha256": Profile.load(path).decisions_digest()}
    except ProfileError:  # reported where auto loads it; the header names the file's bytes
        return file_identity(path, content=True)


def solve_text(settings: RunSettings, text: str, on_event=None):
    """`tts solve`: one problem, with engines sized for its search (and its length)."""
    from .datasets import MAX_PROBLEM_CHARS
    notes = []
    if len(text) > MAX_PROBLEM_CHARS:
        notes.append(f"problem text of {len(text)} characters cut to {MAX_PROBLEM_CHARS}")
        text = text[:MAX_PROBLEM_CHARS]
    session = Session(settings.models)
    session.fit_context(text)
    scheduler = session.open([(settings.strategy, settings.search)])
    try:
        result = session.solve(scheduler, settings.strategy, text, settings.search, on_event)
    finally:
        session.close(scheduler)
    result.notes = notes + result.notes
    return result


class LocalSolver:
    """The searches of a batch command (grade, compare, calibrate) on this machine: one policy
    engine and verifier sized for all the runs' plans, one scheduler. A Ray cluster's
    `cluster.RaySolver` has the same face."""

    def __init__(self, session: Session, plans: list, concurrency: int | None, verifier: bool = False):
        self.session = session
        self.scheduler = self.session.open(plans, concurrency, verifier)
        self.asked = concurrency

    def solve_many(self, pairs, job_for):
        return self.session.solve_many(self.scheduler, pairs, job_for)

    def share_draws(self):
        """From now on the searches share the steps they would all sample (search/memo.py)."""
        from .search import StepMemo
        self.scheduler.memo = StepMemo()
        return self.scheduler.memo

    @property
    def in_flight(self) -> str:
        return str(self.scheduler.in_flight)

    def describe(self) -> str:
        return (f"concurrency: {self.scheduler.concurrency}{' (auto)' if self.asked is None else ''}: "
                f"{self.scheduler.engine.n_seq_max} sequence slots, searches start as their paths fit; "
                f"{self.session.memory.describe()}")

    def info(self) -> dict:
        return self.session.info()

    def close(self) -> None:
        self.session.close(self.scheduler)


__all__ = ["DEFAULT_CONTEXT_PER_PATH", "LocalSolver", "Session", "close", "solve_text", "Job", "Scheduler",
           "open_policy", "open_verifier", "run_search"]
