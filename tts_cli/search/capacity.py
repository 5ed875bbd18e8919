"""How many sequences a search holds, and how many searches fit one llama.cpp context: the one
place this arithmetic lives (the scheduler admits searches by it, Session and train-prm size
their engines by it).

A policy context holds up to MAX_SEQUENCES sequences; PROMPT_CACHE_SLOTS of them keep the
last prompts for the next searches to copy. A search holds its paths (slots_needed); a model
verifier holds the scored nodes its paths may still extend (verifier_slots_needed).
"""

from __future__ import annotations

from .types import ConfigError, SearchConfig

MAX_SEQUENCES = 256  # llama.cpp's limit per context
# Prompts the policy engine keeps: the current problem's and the one before (problems of a set
# share their system prompt or few-shot examples, so the next prompt copies that prefix).
PROMPT_CACHE_SLOTS = 2

# --concurrency auto: searches in flight until this many sequences fill a decode. On a GPU a
# decode of 64+ sequences costs little more than one of 4; on a few CPU cores the gain stops
# early (see docs/measurements.md, "Many problems at once").
AUTO_SEQUENCES_GPU = 64
AUTO_SEQUENCES_CPU = 32

# Strategies that never ask a verifier for a score.
UNSCORED = ("cot", "majority", "majority-adaptive", "deepconf")


def slots_needed(strategy: str, config: SearchConfig) -> int:
    """Policy sequences a search may hold at once: its N paths (one for CoT), and as many
    lookahead rollouts again in beam search (auto may choose beam)."""
    if strategy == "cot":
        return 1
    return config.n * (2 if config.lookahead and strategy in ("beam", "auto") else 1)


def verifier_slots_needed(strategy: str, config: SearchConfig) -> int:
    """Verifier sequences a search may hold: a prefix, each scored node until its children are
    scored (2N), lookahead rollouts (N), and a throwaway query fork each."""
    if strategy in UNSCORED:
        return 0
    return 1 + config.n * (3 if config.lookahead else 2) + config.n


def auto_concurrency(per_search_slots: int, on_gpu: bool, model_verifier: bool = False) -> int:
    """Searches to keep in flight so that their sequences fill a batch. On CPU with a model
    verifier (judge, PRM GGUFs), one: its prefills are compute-bound and its unified cache makes
    every token attend over every search's cells, so more searches made grading slower
    (measured: DVTS N=8 with judge, 0.84x at K=4)."""
    if model_verifier and not on_gpu:
        return 1
    target = AUTO_SEQUENCES_GPU if on_gpu else AUTO_SEQUENCES_CPU
    return max(1, target // max(1, per_search_slots))


def searches_in_flight(need: int, asked: int | None, on_gpu: bool, model_verifier: bool = False) -> int:
    """How many searches of `need` sequences each one policy context runs at once: `asked`
    (--concurrency), or auto; never more than fit beside the prompt cache. A search that cannot
    fit at all is a ConfigError naming the limit."""
    if need + PROMPT_CACHE_SLOTS > MAX_SEQUENCES:
        raise ConfigError(f"a search of {need} sequences at once does not fit llama.cpp's {MAX_SEQUENCES} per "
                          f"context ({PROMPT_CACHE_SLOTS} are kept for prompts); lower --n or --samples")
    k = asked or auto_concurrency(need, on_gpu, model_verifier)
    return max(1, min(k, (MAX_SEQUENCES - PROMPT_CACHE_SLOTS) // need))


def policy_slots(need: int, searches: int) -> int:
    """Sequence slots of a policy engine for `searches` searches of `need` sequences each, and
    the prompt cache."""
    return min(MAX_SEQUENCES, searches * need + PROMPT_CACHE_SLOTS)


def verifier_slots(config: SearchConfig, searches: int) -> int:
    """Sequence slots of a model verifier's engine for `searches` searches of this budget."""
    per_search = max(verifier_slots_needed("beam", config), 4)
    return min(MAX_SEQUENCES, searches * per_search + 4)


# --- memory: how many searches, and how long a path, fit the device -----------------------------

GB = 1e9
# What llama.cpp allocates beside the KV cache and the weights (compute buffers, the output
# rows, the sampler state), as a share of the memory given to the caches, plus a floor.
OVERHEAD_SHARE = 0.10
OVERHEAD_BYTES = 256e6
SMALLEST_CONTEXT = 512  # cells per path below which a math solution does not fit anyway


class MemoryPlan:
    """What fits: `searches` in flight, each path with `context` cells, and the bytes they take."""

    def __init__(self, searches: int, context: int, kv_bytes: float, free_bytes: float, where: str):
        self.searches, self.context, self.kv_bytes, self.free_bytes, self.where = \
            searches, context, kv_bytes, free_bytes, where

    def describe(self) -> str:
        return (f"memory: {self.free_bytes / GB:.1f} GB free ({self.where}); KV caches {self.kv_bytes / GB:.2f} GB for "
                f"{self.searches} searches of {self.context}-cell paths")


def kv_bytes(searches: int, per_search: int, context: int, policy_cell: float, verifier_cell: float,
             budget: int) -> float:
    """KV cache bytes of a policy engine holding `searches` searches of `per_search` sequences
    (split cache: each its own `context` cells, plus the prompt cache) and, if the verifier is a
    model (`verifier_cell` > 0), its unified cache of searches x (N + 2) x context cells."""
    policy = policy_slots(per_search, searches) * context * policy_cell
    verifier = searches * (budget + 2) * context * verifier_cell
    return policy + verifier


def plan_memory(free_bytes: float, *, per_search: int, budget: int, policy_cell: float, verifier_cell: float = 0.0,
                extra_bytes: float = 0.0, asked_searches: int | None, wanted_searches: int,
                context: int | None, default_context: int, where: str = "device") -> MemoryPlan:
    """The searches in flight and the cells per path that fit `free_bytes` (what the device has
    free once the policy is loaded), `extra_bytes` being what is still to load (a PRM's weights).

    `asked_searches` (--concurrency N) and `context` (--context-per-path) given by the user are
    kept or refused, never changed; otherwise the searches are cut to what fits (at most
    `wanted_searches`) and the context, when one search of `default_context`-cell paths does not
    fit, halves down to SMALLEST_CONTEXT. A configuration that cannot fit is a ConfigError
    naming what to lower."""
    usable = max(0.0, free_bytes - extra_bytes - OVERHEAD_BYTES) / (1 + OVERHEAD_SHARE)

    def fits(k: int, c: int) -> bool:
        return kv_bytes(k, per_search, c, policy_cell, verifier_cell, budget) <= usable

    contexts = [context] if context else [c for c in (default_context, default_context // 2, default_context // 4,
                                                      default_context // 8) if c >= SMALLEST_CONTEXT]
    for c in contexts:
        if not fits(1, c):
            continue
        if asked_searches:
            if not fits(asked_searches, c):
                most = max(k for k in range(1, asked_searches) if fits(k, c))
                raise ConfigError(_too_big(f"--concurrency {asked_searches}", asked_searches, per_search, budget, c,
                                           policy_cell, verifier_cell, free_bytes, where,
                                           f"lower --concurrency ({most} fit) or --context-per-path"))
            k = asked_searches
        else:
            k = max(k for k in range(1, max(1, wanted_searches) + 1) if fits(k, c))
        return MemoryPlan(k, c, kv_bytes(k, per_search, c, policy_cell, verifier_cell, budget), free_bytes, where)
    c = contexts[-1] if contexts else SMALLEST_CONTEXT
    advice = "lower --n" + (" or --context-per-path" if context else "")
    if verifier_cell:
        advice += ", or use a verifier without a model (confidence, arithmetic)"
    raise ConfigError(_too_big("one search", 1, per_search, budget, c, policy_cell, verifier_cell, free_bytes, where,
                               advice))


def _too_big(what, k, per_search, budget, c, policy_cell, verifier_cell, free_bytes, where, advice) -> str:
    need = kv_bytes(k, per_search, c, policy_cell, verifier_cell, budget) * (1 + OVERHEAD_SHARE) + OVERHEAD_BYTES
    return (f"{what} of {per_search} paths x {c} cells needs {need / GB:.1f} GB of KV cache; "
            f"{free_bytes / GB:.1f} GB are free ({where}): {advice}")
