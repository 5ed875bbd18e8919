"""The policy's own confidence: exp(mean token log-probability of the step). Free: it reads the
log-probabilities the policy already produced."""

from __future__ import annotations

import math

from .base import StepToScore, Verifier


class ConfidenceVerifier(Verifier):
    name = "confidence"

    def __init__(self):
        self._scores: dict[int, float] = {}

    def begin(self, problem: str) -> None:
        self._scores.clear()

    def score(self, problem: str, items: list[StepToScore]) -> list[float]:
        out = []
        for it in items:
            finite = [lp for lp in it.logprobs if math.isfinite(lp)]
            if finite:
                s = math.exp(sum(finite) / len(finite))
            else:  # an empty step (the path just ended): it says nothing new
                s = self._scores.get(it.parent_id, 0.5)
            self._scores[it.node_id] = s
            out.append(s)
        return out

    def forget(self, node_ids) -> None:
        for i in node_ids:
            self._scores.pop(i, None)
