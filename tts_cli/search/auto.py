"""Compute-optimal test-time scaling: pick the strategy from the problem's predicted difficulty.

1. Probe: sample a few paths (scored by the verifier when there is one). When the profile holds
   a difficulty model fitted for this many probe paths, it predicts the bin from the probe's
   answer agreement and scores (and the probe samples at the temperature and aggregation the
   model was fitted on); else the agreement alone estimates the policy's pass@1, binned easy /
   medium / hard by the profile's thresholds.
2. Look the bin and the budget up in a `tts calibrate` profile (or, without one, fall back to the
   paper's findings for the policy's size) and run the chosen setting with the rest of the budget.
3. The probe's paths stay candidates: the final answer is chosen over both stages. Both stages
   are one search: its compute (probe included) is counted by the scheduler; each stage samples
   from its own seed stream, so the second stage never repeats the probe's paths.
"""

from __future__ import annotations

from dataclasses import replace

from ..difficulty import Bins, agreement
from ..difficulty_model import predict_bin, probe_features
from ..profile import Profile, default_choice
from .beam import beam
from .best_of_n import best_of_n
from .adaptive import best_of_n_adaptive, majority_adaptive
from .common import Search, choose_answer, group_answers
from .cot import cot
from .dvts import dvts
from .majority import majority
from .particle_filter import particle_filter
from .types import NEEDS_VERIFIER, SearchConfig, SearchResult

# What the second stage can be (auto is not among them).
SECOND_STAGE = {"cot": cot, "majority": majority, "best-of-n": best_of_n, "beam": beam, "dvts": dvts,
                "majority-adaptive": majority_adaptive, "best-of-n-adaptive": best_of_n_adaptive,
                "particle-filter": particle_filter}


def auto(search: Search, config: SearchConfig):
    engine, verifier = search.engine, search.verifier
    config.validate("auto")
    notes = []
    profile = Profile.load(config.profile) if config.profile else None
    policy_file = str(getattr(engine.model, "path", ""))
    verifier_name = getattr(verifier, "name", None)
    if profile is not None and not profile.made_for(policy_file, verifier_name):
        notes.append(f"profile {config.profile} was made for {profile.policy.get('file')} with "
                     f"{profile.prm or 'no verifier'}, not this policy/verifier: using the paper's defaults")
        profile = None

    probe_n = probe_size(config.n, config.probe)
    model = profile.difficulty_model(probe_n) if profile else None
    probe_cfg = replace(config, n=probe_n, profile=None, **(model or {}).get("probe_settings", {}))
    probe = yield from (best_of_n if verifier is not None else majority)(search, probe_cfg)
    estimate = agreement(probe.candidates)
    difficulty, difficulty_from = predicted_bin(probe.candidates, model, profile.bins if profile else Bins())

    choice = profile.lookup(difficulty, config.n) if profile else None
    if choice is not None:
        settings, reason = choice.settings(), (f"profile: chosen for {difficulty} problems at N={choice.budget} "
                                               f"({choice.accuracy:.0%} accuracy; rule: {choice.rule or 'best measured'})")
    else:
        if profile is None and not config.profile:
            notes.append("no profile given: using the paper's findings by policy size")
        params = getattr(engine.model, "n_params", 1e9)
        settings, reason = default_choice(difficulty, config.n, params, verifier is not None)

    strategy = settings["strategy"]
    rest_cfg = replace(config, profile=None, **{k: v for k, v in settings.items() if k not in ("strategy", "n")})
    rest = config.n - probe_n
    if strategy in ("beam", "dvts"):
        rest -= rest % rest_cfg.beam_width
    second = None
    if strategy == "cot":
        rest = min(rest, 1)  # one greedy path; the rest of the budget is not spent
    if rest >= 1 and not (strategy in ("beam", "dvts") and rest < rest_cfg.beam_width):
        if strategy in NEEDS_VERIFIER and verifier is None:
            strategy = "majority"
        second = yield from SECOND_STAGE[strategy](search, replace(rest_cfg, n=rest))
    else:
        notes.append(f"the probe used the whole budget (N={config.n}): no second stage")

    result = merge(probe, second, select=_selection(strategy, rest_cfg, verifier))
    result.strategy = "auto"
    result.config = {**config.as_dict(), "chosen": settings}
    result.notes = notes + result.notes
    result.auto = {"chosen": strategy, "settings": {**settings, "n": rest if second else 0},
                   "difficulty": difficulty, "difficulty_from": difficulty_from,
                   "pass_at_1_estimate": round(estimate, 3), "probe_paths": probe_n,
                   "reason": reason, "profile": config.profile if profile else None}
    return result


def probe_size(n: int, probe: int | None = None) -> int:
    """Paths the probe samples at budget n: --probe, else n/4 between 2 and 4; never above n.
    (calibrate fits a difficulty model per probe size that its budgets give.)"""
    return min(probe or min(4, max(2, n // 4)), n)


def predicted_bin(candidates: list, model: dict | None, bins: Bins) -> tuple[str, str]:
    """(bin, how it was predicted): by the profile's difficulty model when it has one for this
    probe (and the probe has the features it needs: scores need a verifier), else by the
    agreement of the probe's answers against the bins' pass@1 thresholds."""
    if model is not None:
        features = probe_features(candidates)
        if all(f in features for f in model["model"]["features"]):
            return predict_bin(model["model"], features), "difficulty model"
    return bins.of(agreement(candidates)), "answer agreement"


def _selection(strategy: str, cfg: SearchConfig, verifier) -> str:
    if strategy == "cot":
        return "last"  # the greedy path's answer: the sampled probe paths are weaker
    if strategy in ("majority", "majority-adaptive") or verifier is None:
        return "majority"
    return cfg.selection


def merge(first: SearchResult, second: SearchResult | None, select: str) -> SearchResult:
    """One result from two stages: trees joined at the root, candidates pooled."""
    if second is None:
        first.answer = choose_answer(first.candidates, first.votes, "majority" if select == "last" else select)
        return first
    offset = len(first.tree) - 1
    tree = list(first.tree)
    for node in second.tree[1:]:
        tree.append(replace(node, id=node.id + offset, parent=0 if node.parent == 0 else node.parent + offset))
    candidates = first.candidates + [replace(c, node_id=c.node_id + offset) for c in second.candidates]
    votes = group_answers(candidates)
    answer = second.answer if select == "last" else choose_answer(candidates, votes, select)
    return SearchResult(problem=first.problem, strategy=second.strategy, config=second.config,
                        answer=answer, candidates=candidates, tree=tree,
                        votes=votes, compute={}, verifier=first.verifier or second.verifier,
                        notes=first.notes + [n for n in second.notes if n not in first.notes])


__all__ = ["auto", "merge", "predicted_bin", "probe_size"]
