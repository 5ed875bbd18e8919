"""A scripted stand-in for the engine: the same verbs, no model. Deterministic and instant.

A script is a function (steps so far, branch) -> (step text, stop reason), where `branch` is the
sequence's index among the children it was forked with (0 for the sequence that continues).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tts_cli.engine import Step
from tts_cli.verifiers.base import StepToScore, Verifier


class _Model:
    chat_template = None
    path = "fake.gguf"


@dataclass(eq=False)
class FakeSeq:
    id: int
    steps: list[str] = field(default_factory=list)
    branch: int = 0
    released: bool = False


class FakeEngine:
    def __init__(self, script):
        self.script = script
        self.model = _Model()
        self.stats = None
        self.live: set[int] = set()
        self.generate_calls: list[int] = []  # batch size of each generate call
        self._next = 0

    def _new(self, steps, branch) -> FakeSeq:
        seq = FakeSeq(self._next, list(steps), branch)
        self._next += 1
        self.live.add(seq.id)
        return seq

    def start(self, prompt, sampling=None, cache=False):
        return self._new([], 0)

    def fork(self, seq, k, sampling=None):
        assert not seq.released
        return [self._new(seq.steps, i + 1) for i in range(k)]

    def generate(self, seqs, stop=(), max_tokens=256):
        assert len({s.id for s in seqs}) == len(seqs)
        self.generate_calls.append(len(seqs))
        out = []
        for s in seqs:
            assert not s.released
            text, reason = self.script(s.steps, s.branch)
            s.steps.append(text)
            s.branch = 0
            out.append(Step(text=text, tokens=[1] * max(1, len(text) // 4), logprobs=[-0.1] * max(1, len(text) // 4),
                            stop_reason=reason))
        return out

    def release(self, seq):
        if not seq.released:
            seq.released = True
            self.live.discard(seq.id)


class ScoreInTextVerifier(Verifier):
    """Scores a step by the number after '|' in its text ("... |0.75"); 0.5 if none."""

    name = "scripted"

    def __init__(self):
        self.calls: list[int] = []
        self.forgotten: list[int] = []

    def score(self, problem, items: list[StepToScore]):
        self.calls.append(len(items))
        out = []
        for it in items:
            m = re.search(r"\|([0-9.]+)", it.text)
            out.append(float(m.group(1)) if m else 0.5)
        return out

    def forget(self, node_ids):
        self.forgotten.extend(node_ids)
