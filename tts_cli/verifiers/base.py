"""The verifier interface: score the newest step of many paths at once.

Several searches can share one verifier, so its state is kept per search stage: `begin(key,
problem)` opens a key, every item names its key, its node and its parent node, `forget(key,
node_ids)` drops nodes no path will extend, and `end(key)` drops the rest. A verifier may keep
state per node (a KV-cached sequence holding the path so far) so that scoring a child only
evaluates the child's own step. One `score` call may hold items of many keys: the scheduler
merges the requests of every search waiting on the verifier.

A key is (search key, stage); a verifier that runs a model makes its sequences owned by the
search key, so their compute is counted for that search.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepToScore:
    key: tuple  # (search key, stage)
    node_id: int
    parent_id: int | None  # 0 (the root) for a path's first step
    text: str
    logprobs: list[float]  # the policy's log-probabilities of the step's tokens
    hidden: object = None  # a policy engine with hidden=True: Step.hidden (np.ndarray), for a policy head


class Verifier:
    name = "verifier"
    engine = None  # the verifier's own engine when it runs a model (its compute is counted)

    def begin(self, key: tuple, problem: str) -> None:
        """A search stage starts on `problem`; its node ids start at 0."""

    def score(self, items: list[StepToScore]) -> list[float]:
        """One score in [0, 1] per item: how likely its step is correct."""
        raise NotImplementedError

    def forget(self, key: tuple, node_ids) -> None:
        """Drop per-node state for nodes no path will extend."""

    def take_usage(self, search_key):
        """What the verifier computed for one search (engine Stats), taken out of its counters;
        None when it computed nothing for it."""
        return self.engine.usage.pop(search_key, None) if self.engine is not None else None

    def end(self, key: tuple) -> None:
        """The stage is over: drop everything kept for it."""

    def close(self) -> None:
        pass
