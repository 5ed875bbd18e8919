"""Problem difficulty as the paper defines it: the policy's pass@1, binned.

Offline (with a reference answer): sample K paths and count the correct ones. Online (no
reference): the agreement among a few probe paths, which tracks pass@1 for the easy and the
hard ends (many paths agreeing usually means the policy knows the answer).
"""

from __future__ import annotations

from dataclasses import dataclass

from .answers import answers_match

# Candidates are any objects with an `.answer` (search.types.Candidate): this module imports
# nothing from search, which imports it.

DEFAULT_BINS = {"easy": 0.5, "medium": 0.1}  # easy >= 50%, medium 10-50%, hard < 10%
BIN_NAMES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Bins:
    easy: float = DEFAULT_BINS["easy"]
    medium: float = DEFAULT_BINS["medium"]

    def __post_init__(self):
        if not 0.0 <= self.medium <= self.easy <= 1.0:
            raise ValueError(f"difficulty bins must satisfy 0 <= medium ({self.medium}) <= easy ({self.easy}) <= 1")

    def of(self, pass_at_1: float) -> str:
        if pass_at_1 >= self.easy:
            return "easy"
        if pass_at_1 >= self.medium:
            return "medium"
        return "hard"

    def as_dict(self) -> dict:
        return {"easy": self.easy, "medium": self.medium}


def pass_at_1(candidates: list, reference: str) -> float:
    """Fraction of sampled paths whose answer matches the reference."""
    if not candidates:
        return 0.0
    return sum(answers_match(c.answer, reference) for c in candidates) / len(candidates)


def agreement(candidates: list) -> float:
    """Online estimate of pass@1 from sampled paths without a reference: sqrt of the share of
    path pairs that reach the same answer. If a fraction p of paths is right and wrong answers
    scatter, two paths agree with probability about p^2. Unanswered paths agree with nothing."""
    n = len(candidates)
    if n == 0:
        return 0.0
    if n == 1:
        return 1.0 if candidates[0].answer is not None else 0.0
    pairs = agree = 0
    for i in range(n):
        for j in range(i + 1, n):
            pairs += 1
            a, b = candidates[i].answer, candidates[j].answer
            agree += a is not None and b is not None and answers_match(a, b)
    return (agree / pairs) ** 0.5
