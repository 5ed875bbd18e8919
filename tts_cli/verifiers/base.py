"""The verifier interface: score the newest step of many paths at once.

Each item names its node and its parent node. A verifier may keep state per node (a KV-cached
sequence holding the path so far) so that scoring a child only evaluates the child's own step;
`forget` tells it which nodes no path will extend any more.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepToScore:
    node_id: int
    parent_id: int | None  # 0 (the root) for a path's first step
    text: str
    logprobs: list[float]  # the policy's log-probabilities of the step's tokens


class Verifier:
    name = "verifier"
    stats = None  # engine counters when the verifier runs a model

    def begin(self, problem: str) -> None:
        """A new search starts: node ids restart, earlier state can go."""

    def score(self, problem: str, items: list[StepToScore]) -> list[float]:
        """One score in [0, 1] per item: how likely its step is correct."""
        raise NotImplementedError

    def forget(self, node_ids) -> None:
        """Drop per-node state for nodes no path will extend."""

    def close(self) -> None:
        pass
