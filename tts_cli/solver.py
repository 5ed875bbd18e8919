"""Putting a search together: open the policy engine, build the verifier, run a strategy.

The CLI calls these; tests and scripts can too.
"""

from __future__ import annotations

import os
from pathlib import Path

from .engine import Engine, EngineError, Model
from .search import NEEDS_VERIFIER, STRATEGIES, SearchConfig, SearchResult
from .verifiers import HEAD_FORMATS, ConfidenceVerifier, JudgeVerifier, Verifier, verifier_from_format

# KV cells reserved per path (prompt + solution). A path that reaches it ends with reason
# "context". 2048 covers MATH-style solutions of small models; raise it for long ones.
DEFAULT_CONTEXT_PER_PATH = 2048


def policy_slots(config: SearchConfig) -> int:
    """Sequences a strategy holds at once: N paths (plus lookahead rollouts in beam search)."""
    return min(256, config.n * (2 if config.lookahead else 1) + 1)


def open_policy(model: str | os.PathLike | Model, config: SearchConfig, *, n_gpu_layers: int | None = None,
                n_threads: int | None = None, context_per_path: int = DEFAULT_CONTEXT_PER_PATH) -> Engine:
    slots = policy_slots(config)
    return Engine(model, n_ctx=slots * context_per_path, n_seq_max=slots, n_gpu_layers=n_gpu_layers,
                  n_threads=n_threads, seed=config.seed)


def open_verifier(spec: str | None, policy: Engine, config: SearchConfig, *, n_gpu_layers: int | None = None,
                  n_threads: int | None = None, context_per_path: int = DEFAULT_CONTEXT_PER_PATH,
                  prm_entry: dict | None = None) -> Verifier | None:
    """spec: "confidence", "judge" (the policy model as judge), or a PRM GGUF path described by
    `prm_entry` (a models.yaml entry with a `prm:` block)."""
    if spec is None:
        return None
    if spec == "confidence":
        return ConfidenceVerifier()
    # A scoring context: node sequences for up to 2N paths; unified, since they share prefixes.
    slots = min(256, 2 * config.n + 4)
    n_ctx = (config.n + 2) * context_per_path
    if spec == "judge":
        engine = Engine(policy.model, n_ctx=n_ctx, n_seq_max=slots, kv_unified=True, n_threads=n_threads)
        return JudgeVerifier(engine, name="judge")
    if prm_entry is None or "prm" not in prm_entry:
        raise EngineError(f"{spec}: no PRM format known for this model; describe it in models.yaml "
                          "(prm: {format: math_shepherd|rlhflow|judge})")
    fmt = prm_entry["prm"].get("format")
    engine = Engine(Path(spec), n_ctx=n_ctx, n_seq_max=slots, kv_unified=True, n_gpu_layers=n_gpu_layers,
                    n_threads=n_threads, embeddings=fmt in HEAD_FORMATS)
    try:
        return verifier_from_format(prm_entry["prm"], engine, name=prm_entry.get("name") or Path(spec).stem,
                                    head_dir=Path(spec).parent)
    except ValueError as e:
        engine.close()
        raise EngineError(str(e))


def run_search(strategy: str, problem: str, policy: Engine, verifier: Verifier | None, config: SearchConfig,
               on_event=None) -> SearchResult:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if strategy in NEEDS_VERIFIER and verifier is None:
        raise ValueError(f"{strategy} needs a verifier (--prm)")
    return STRATEGIES[strategy](problem, policy, verifier, config, on_event)
