"""Shared draws: a step sampled once serves every search that would sample it.

Without a memo, each sequence's sampler is seeded from its parent's (engine.fork), so two
searches on the same problem draw unrelated samples. With one (`Scheduler(memo=StepMemo())`,
what `tts calibrate` uses), every step is a draw with a place: the i-th step drawn from the root
(the prompt, under given sampling settings), the j-th step drawn from that one, and so on. A
draw is sampled with a seed made from its place, so it is a function of its place: whichever
search asks for the j-th child of the i-th first step gets the same step, and it is generated
once and replayed to the others from the memo.

Each run is still an ordinary sample of its strategy: the steps it draws from one node have
distinct places (distinct seeds: independent), even when two of its paths have the same text.
What changes is that runs of different settings share their draws (common random numbers):
beam N=4 sees the first 4 of the 16 first steps beam N=16 sees, a DVTS subtree goes on from a
pool path's first step with that path's second step as one of its candidates, and so on. A
calibration measures each setting as before and generates only the union of what its runs need.
A place does not depend on the order the searches run in, so neither does what a run draws.

A replayed step costs no decode until its path goes on with a step the memo does not hold:
then its tokens are prefilled ("caught up") into the path's sequence first. A draw that another
search is generating at the moment is waited for (searches of one problem run side by side and
start with the same first steps), not generated twice.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from ..engine import Step

Draw = tuple[bytes, int]  # (the parent's key, the index of this draw among the parent's)


def root_key(signature: str, prompt: str) -> bytes:
    """The root's key: the prompt and everything else a draw depends on (sampling settings,
    seed, step limits)."""
    h = hashlib.blake2b(signature.encode("utf-8", "surrogatepass"), digest_size=16)
    h.update(b"\x00")
    h.update(prompt.encode("utf-8", "surrogatepass"))
    return h.digest()


def child_key(parent: bytes, i: int) -> bytes:
    """The key of the i-th step drawn from the node whose key is `parent`."""
    return hashlib.blake2b(parent + i.to_bytes(8, "little"), digest_size=16).digest()


def draw_seed(draw: Draw) -> int:
    """The sampler seed of a draw: the same draw always samples with the same seed."""
    return int.from_bytes(child_key(*draw)[:4], "little") & 0x7FFFFFFF


@dataclass
class MemoStats:
    hits: int = 0  # steps replayed from the memo
    misses: int = 0  # steps generated (and kept)
    tokens_replayed: int = 0  # generated tokens the hits did not generate again

    def as_dict(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "tokens_replayed": self.tokens_replayed}


class StepMemo:
    """Steps by draw, shared by the searches of one policy engine. Least recently used steps
    give way past `max_steps` (a calibration goes problem by problem: old problems' steps are
    not asked for again)."""

    def __init__(self, max_steps: int = 50_000):
        self.max_steps = max_steps
        self._steps: OrderedDict[Draw, Step] = OrderedDict()
        self._pending: dict[Draw, object] = {}  # draws being generated now -> the search generating them
        self.stats = MemoStats()

    def __len__(self) -> int:
        return len(self._steps)

    def has(self, draw: Draw) -> bool:
        return draw in self._steps

    def get(self, draw: Draw) -> Step | None:
        step = self._steps.get(draw)
        if step is not None:
            self._steps.move_to_end(draw)
            self.stats.hits += 1
            self.stats.tokens_replayed += len(step.tokens)
        return step

    def claim(self, draws: list[Draw], owner) -> None:
        """`owner` generates these draws now: other searches wait for them instead."""
        for d in draws:
            self._pending[d] = owner

    def is_pending(self, draw: Draw) -> bool:
        return draw in self._pending

    def ready(self, draws: list[Draw]) -> bool:
        """Whether waiting on these draws is over: each is in the memo, or nobody generates it."""
        return all(d in self._steps or d not in self._pending for d in draws)

    def abandon(self, owner) -> None:
        """`owner` ended (or failed) without generating its claims: they are free again."""
        for d in [d for d, o in self._pending.items() if o == owner]:
            del self._pending[d]

    def put(self, draw: Draw, step: Step) -> None:
        self.stats.misses += 1
        self._pending.pop(draw, None)
        self._steps[draw] = step
        self._steps.move_to_end(draw)
        while len(self._steps) > self.max_steps:
            self._steps.popitem(last=False)
