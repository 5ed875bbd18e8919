"""Putting searches together: open the policy engine and the verifier, sized for the searches
that will run on them at once, and run them through the scheduler.

The CLI calls these; tests and scripts can too.
"""

from __future__ import annotations

import os
from pathlib import Path

from .engine import Engine, EngineError, Model, gpu_offload_supported
from .search import SearchConfig
from .search.scheduler import Job, Scheduler, run_search, slots_needed, verifier_slots_needed
from .verifiers import HEAD_FORMATS, ConfidenceVerifier, JudgeVerifier, Verifier, verifier_from_format

# KV cells reserved per path (prompt + solution). A path that reaches it ends with reason
# "context". 2048 covers MATH-style solutions of small models; raise it for long ones.
DEFAULT_CONTEXT_PER_PATH = 2048
MAX_SEQUENCES = 256  # llama.cpp's limit per context
# Prompts the policy engine keeps: the current problem's and the one before (problems of a set
# share their system prompt or few-shot examples, so the next prompt copies that prefix).
PROMPT_CACHE_SLOTS = 2

# --concurrency auto: searches in flight until this many sequences fill a decode. On a GPU a
# decode of 64+ sequences costs little more than one of 4; on a few CPU cores the gain stops
# early (see README, "Many problems at once").
AUTO_SEQUENCES_GPU = 64
AUTO_SEQUENCES_CPU = 32


def auto_concurrency(per_search_slots: int, on_gpu: bool | None = None, model_verifier: bool = False) -> int:
    """Searches to keep in flight so that their sequences fill a batch. On CPU with a model
    verifier (judge, PRM GGUFs), one: its prefills are compute-bound and its unified cache makes
    every token attend over every search's cells, so more searches made grading slower
    (measured: DVTS N=8 with judge, 0.84x at K=4; README, "Many problems at once")."""
    if on_gpu is None:
        on_gpu = gpu_offload_supported()
    if model_verifier and not on_gpu:
        return 1
    target = AUTO_SEQUENCES_GPU if on_gpu else AUTO_SEQUENCES_CPU
    return max(1, target // max(1, per_search_slots))


def policy_slots(config: SearchConfig, strategy: str = "beam", concurrency: int = 1) -> int:
    """Sequences the policy engine needs: `concurrency` searches, each its N paths (plus
    lookahead rollouts), and the prompt cache's."""
    return min(MAX_SEQUENCES, concurrency * slots_needed(strategy, config) + PROMPT_CACHE_SLOTS)


def open_policy(model: str | os.PathLike | Model, config: SearchConfig, *, strategy: str = "beam",
                concurrency: int = 1, n_gpu_layers: int | None = None, n_threads: int | None = None,
                context_per_path: int = DEFAULT_CONTEXT_PER_PATH, slots: int | None = None) -> Engine:
    """The policy's engine. Its KV cache is split (one stream per sequence) whatever its size, so
    a path's arithmetic does not depend on how many other paths or problems share the context:
    the same seed gives the same answers at any --concurrency and budget."""
    slots = slots or policy_slots(config, strategy, concurrency)
    return Engine(model, n_ctx=slots * context_per_path, n_seq_max=slots, kv_unified=False,
                  n_gpu_layers=n_gpu_layers, n_threads=n_threads, seed=config.seed,
                  prompt_cache_slots=PROMPT_CACHE_SLOTS)


def open_verifier(spec: str | None, policy: Engine, config: SearchConfig, *, strategy: str = "beam",
                  concurrency: int = 1, n_gpu_layers: int | None = None, n_threads: int | None = None,
                  context_per_path: int = DEFAULT_CONTEXT_PER_PATH, prm_entry: dict | None = None) -> Verifier | None:
    """spec: "confidence", "judge" (the policy model as judge), or a PRM GGUF path described by
    `prm_entry` (a models.yaml entry with a `prm:` block)."""
    if spec is None:
        return None
    if spec == "confidence":
        return ConfidenceVerifier()
    # A scoring context: node sequences for up to 2N paths per search; unified, since they
    # share prefixes.
    per_search = max(verifier_slots_needed("beam", config), 4)
    slots = min(MAX_SEQUENCES, concurrency * per_search + 4)
    n_ctx = concurrency * (config.n + 2) * context_per_path
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


def close(policy: Engine, verifier: Verifier | None) -> None:
    """Free a policy engine and its verifier (and the verifier's own engine, if it has one)."""
    if verifier is not None:
        verifier.close()
        if verifier.engine is not None:
            verifier.engine.close()
    policy.close()


__all__ = ["DEFAULT_CONTEXT_PER_PATH", "close", "Job", "Scheduler", "auto_concurrency", "open_policy", "open_verifier",
           "policy_slots", "run_search"]
