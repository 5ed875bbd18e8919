"""Verifiers (process reward models and their stand-ins), all behind Verifier.score()."""

from __future__ import annotations

from .base import StepToScore, Verifier
from .confidence import ConfidenceVerifier
from .head import HEAD_FORMATS, POLICY_HEAD, ClassificationHeadPRM, PolicyHeadPRM, ValueHeadPRM, load_head
from .token_logit import JudgeVerifier, MathShepherdPRM, RLHFlowPRM, TokenLogitVerifier

TOKEN_LOGIT_FORMATS = {"math_shepherd": MathShepherdPRM, "rlhflow": RLHFlowPRM}

__all__ = ["ClassificationHeadPRM", "HEAD_FORMATS", "POLICY_HEAD", "PolicyHeadPRM", "ValueHeadPRM", "load_head", "ConfidenceVerifier", "JudgeVerifier", "MathShepherdPRM", "RLHFlowPRM", "StepToScore",
           "TOKEN_LOGIT_FORMATS", "TokenLogitVerifier", "Verifier", "verifier_from_format"]


def verifier_from_format(prm: dict, engine, name: str, head_dir=None) -> Verifier:
    """A verifier for a models.yaml `prm:` block, e.g. {format: math_shepherd, step_tag: "ки"}.
    Head formats read `head_file` from head_dir (the GGUF's folder). A policy_head's engine is
    the policy's own (made with hidden=True)."""
    fmt = prm.get("format")
    if fmt in HEAD_FORMATS or fmt == POLICY_HEAD:
        from pathlib import Path
        head_file = prm.get("head_file")
        if not head_file:
            raise ValueError(f"{name}: a {fmt} PRM needs head_file in models.yaml")
        head = load_head(Path(head_dir or ".") / head_file, fmt)
        if fmt == POLICY_HEAD:
            return PolicyHeadPRM(head, name=name, n_embd=engine.model.n_embd)
        if fmt == "classification_head":
            return ClassificationHeadPRM(engine, head, name=name, step_token=prm.get("step_token", "<extra_0>"))
        return ValueHeadPRM(engine, head, name=name)
    if fmt == "math_shepherd":
        return MathShepherdPRM(engine, step_tag=prm.get("step_tag", "ки"), good=prm.get("good_token", "+"),
                               bad=prm.get("bad_token", "-"), name=name)
    if fmt == "rlhflow":
        return RLHFlowPRM(engine, good=prm.get("good_token", "+"), bad=prm.get("bad_token", "-"), name=name)
    if fmt == "judge":
        return JudgeVerifier(engine, name=name)
    raise ValueError(f"unknown PRM format {fmt!r} (known: math_shepherd, rlhflow, judge, value_head, "
                     "classification_head, policy_head)")
