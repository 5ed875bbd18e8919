"""The policy's own confidence: exp(mean token log-probability of the step). Free: it reads the
log-probabilities the policy already produced."""

from __future__ import annotations

import math

from .base import StepToScore, Verifier


def mean_token_probability(logprobs: list[float]) -> float | None:
    """exp(mean finite log-probability): the step's confidence; None for an empty step."""
    finite = [lp for lp in logprobs if math.isfinite(lp)]
    return math.exp(sum(finite) / len(finite)) if finite else None


class ConfidenceVerifier(Verifier):
    name = "confidence"

    def __init__(self):
        self._scores: dict[tuple, float] = {}  # (key, node id) -> score

    def score(self, items: list[StepToScore]) -> list[float]:
        out = []
        for it in items:
            s = mean_token_probability(it.logprobs)
            if s is None:  # an empty step (the path just ended): it says nothing new
                s = self._scores.get((it.key, it.parent_id), 0.5)
            self._scores[(it.key, it.node_id)] = s
            out.append(s)
        return out

    def forget(self, key: tuple, node_ids) -> None:
        for i in node_ids:
            self._scores.pop((key, i), None)

    def end(self, key: tuple) -> None:
        for k in [k for k in self._scores if k[0] == key]:
            del self._scores[k]
