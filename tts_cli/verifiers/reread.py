"""The reference a policy head is checked against: the same head, computed the two-context way.

A policy_head reads each step's hidden state from the policy's own decode. `RereadHead` applies
the same weights to the state a second llama.cpp context computes by re-reading, from scratch,
exactly the tokens that state came from; `recording_reads` keeps those tokens for every step a
search takes. Used by tests/test_policy_head.py (tiny model) and
benchmarks/policy_head_equivalence.py (a real one). Slow by design: every step's whole text is
prefilled again.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..engine import Engine, Sampling
from ..search.common import Run
from .base import Verifier


class RereadHead(Verifier):
    """sigmoid(w . h + b) with h from a second context re-reading `reads[(search key, node id)]`.
    kv_unified: the reader's KV layout (False: the policy's, one stream per sequence)."""

    name = "two-context"

    def __init__(self, model, head: dict, reads: dict, *, kv_unified: bool = False, n_threads: int | None = None):
        self.engine = Engine(model, n_ctx=4096, n_seq_max=4, kv_unified=kv_unified, n_threads=n_threads,
                             embeddings=True)
        self.weight, self.bias = head["weight"].reshape(-1), float(head["bias"].reshape(-1)[0])
        self.reads = reads

    def score(self, items):
        out = []
        for it in items:
            seq = self.engine.start(self.reads[(it.key, it.node_id)], Sampling(temperature=0.0), owner=it.key[0])
            h = self.engine.hidden_states([seq])[0]
            self.engine.release(seq)
            out.append(float(1.0 / (1.0 + np.exp(-(h @ self.weight + self.bias)))))
        return out

    def close(self) -> None:
        self.engine.close()


@contextlib.contextmanager
def recording_reads():
    """While open, every step a search takes records the tokens its hidden state was computed
    from: yields {(search key, node id): tokens} (Run.step wrapped, restored on exit)."""
    reads: dict = {}
    step = Run.step

    def recording(self, paths):
        nodes = yield from step(self, paths)
        for p, node in zip(paths, nodes):
            reads[(self.key, node.id)] = list(p.seq.tokens[:p.seq.hidden_at])
        return nodes
    Run.step = recording
    try:
        yield reads
    finally:
        Run.step = step
