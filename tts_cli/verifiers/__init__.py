"""Verifiers (process reward models and their stand-ins), all behind Verifier.score()."""

from __future__ import annotations

from .base import StepToScore, Verifier
from .confidence import ConfidenceVerifier
from .token_logit import JudgeVerifier, MathShepherdPRM, RLHFlowPRM, TokenLogitVerifier

TOKEN_LOGIT_FORMATS = {"math_shepherd": MathShepherdPRM, "rlhflow": RLHFlowPRM}

__all__ = ["ConfidenceVerifier", "JudgeVerifier", "MathShepherdPRM", "RLHFlowPRM", "StepToScore",
           "TOKEN_LOGIT_FORMATS", "TokenLogitVerifier", "Verifier", "verifier_from_format"]


def verifier_from_format(prm: dict, engine, name: str) -> Verifier:
    """A verifier for a models.yaml `prm:` block, e.g. {format: math_shepherd, step_tag: "ки"}."""
    fmt = prm.get("format")
    if fmt == "math_shepherd":
        return MathShepherdPRM(engine, step_tag=prm.get("step_tag", "ки"), good=prm.get("good_token", "+"),
                               bad=prm.get("bad_token", "-"), name=name)
    if fmt == "rlhflow":
        return RLHFlowPRM(engine, good=prm.get("good_token", "+"), bad=prm.get("bad_token", "-"), name=name)
    if fmt == "judge":
        return JudgeVerifier(engine, name=name)
    raise ValueError(f"unknown PRM format {fmt!r} (known: math_shepherd, rlhflow, judge)")
