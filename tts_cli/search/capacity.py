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
