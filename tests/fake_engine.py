"""A scripted stand-in for the engine: the same verbs, no model. Deterministic and instant.

A script is a function (steps so far, branch) -> (step text, stop reason), where `branch` is the
sequence's index among the children it was forked with (0 for the sequence that continues);
a script with a third parameter also gets the prompt the sequence started from. A script may
return a third value, the log-probability of every token of the step (default -0.1); a script
with a `seed` parameter also gets the sequence's sampler seed (as a real sampler's, the step then
depends on the seed: what shared draws need, test_memo.py).
A step takes one `advance` per 4 characters of its text (at least one), so steps of different
lengths end at different times, as on the real engine. Like the real engine it has a fixed
number of sequence slots and a context limit per sequence (a step that would outgrow it ends
with reason "context"), seeds each sequence (children derive theirs from their parent's, as
`Engine.fork` does), counts compute per owner, and can release an owner's sequences.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from dataclasses import dataclass, field

from tts_cli.engine import EngineError, Sampling, Stats, Step, derive_seed
from tts_cli.verifiers.base import StepToScore, Verifier


class _Model:
    chat_template = None
    path = "fake.gguf"
    n_params = 1000


@dataclass(eq=False)
class FakeSeq:
    id: int
    owner: object
    prompt: str = ""
    steps: list[str] = field(default_factory=list)
    branch: int = 0
    released: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    n_tokens: int = 0
    n_forks: int = 0


class _FakeBatch:
    def __init__(self, items):
        self.items = items  # [seq, text, reason, tokens left, token log-prob]
        self.live = [i for i, it in enumerate(items) if it[3] > 0]

    @property
    def done(self):
        return not self.live

    def steps(self):
        out = []
        for seq, text, reason, _, logprob in self.items:
            n = max(1, len(text) // 4)
            out.append(Step(text=text, tokens=[1] * n, logprobs=[logprob] * n, stop_reason=reason))
        return out


class FakeEngine:
    def __init__(self, script, n_seq_max: int = 256, n_ctx: int = 1 << 30):
        self.script = script
        self.model = _Model()
        self.n_seq_max = n_seq_max
        self.n_ctx = n_ctx
        self.started: list[FakeSeq] = []  # every sequence ever made, in order
        self.stats = Stats(n_params=1000)
        self.usage: dict = {}
        self.live: dict[int, FakeSeq] = {}
        self.generate_calls: list[int] = []  # sequences in each step request (one per request)
        self.decode_rows: list[list] = []  # the owners of the rows of each advance
        self.peak_live = 0
        self._next = 0
        params = inspect.signature(script).parameters
        self._takes_seed = "seed" in params  # a script with a `seed` parameter also gets the sampler's seed
        self._takes_prompt = len(params) - self._takes_seed == 3
        self.replayed: list[list[str]] = []  # the step texts of each replay, in order
        self.replay_batches: list[int] = []  # sequences caught up in each replay call (one prefill batch)

    def _new(self, steps, branch, owner, prompt, sampling, n_tokens=0) -> FakeSeq:
        if len(self.live) >= self.n_seq_max:
            raise EngineError(f"all {self.n_seq_max} sequence slots are in use")
        seq = FakeSeq(self._next, owner, prompt, list(steps), branch, sampling=sampling, n_tokens=n_tokens)
        self.started.append(seq)
        self._next += 1
        self.live[seq.id] = seq
        self.peak_live = max(self.peak_live, len(self.live))
        return seq

    def start(self, prompt, sampling=None, cache=False, owner=None):
        return self._new([], 0, owner, prompt, sampling or Sampling())

    def fork(self, seq, k, sampling=None):
        assert not seq.released
        kids = []
        for i in range(k):
            s = sampling or Sampling(**{**seq.sampling.__dict__,
                                        "seed": derive_seed(seq.sampling.seed, seq.n_forks, i)})
            kids.append(self._new(seq.steps, i + 1, seq.owner, seq.prompt, s, seq.n_tokens))
        seq.n_forks += 1
        return kids

    def begin_step(self, seqs, stop=(), max_tokens=256):
        assert len({s.id for s in seqs}) == len(seqs)
        self.generate_calls.append(len(seqs))
        items = []
        for s in seqs:
            assert not s.released
            args = (s.steps, s.branch, s.prompt) if self._takes_prompt else (s.steps, s.branch)
            kwargs = {"seed": s.sampling.seed} if self._takes_seed else {}
            text, reason, *logprob = self.script(*args, **kwargs)
            n = max(1, len(text) // 4)
            if s.n_tokens + n > self.n_ctx:  # the context is full: the step stops where it is
                n = max(0, self.n_ctx - s.n_tokens)
                text, reason = text[: 4 * n], "context"
            s.steps.append(text)
            s.n_tokens += n
            s.branch = 0
            items.append([s, text, reason, n, logprob[0] if logprob else -0.1])
        return _FakeBatch(items)

    def advance(self, batches):
        rows = [(b, i) for b in batches for i in b.live]
        if not rows:
            return
        owners = [b.items[i][0].owner for b, i in rows]
        self.decode_rows.append(owners)
        self.stats.decode_calls += 1
        self.stats.tokens_generated += len(rows)
        self.stats.tokens_evaluated += len(rows)
        for owner, k in Counter(owners).items():
            u = self.usage.setdefault(owner, Stats(n_params=1000))
            u.decode_calls += k / len(rows)
            u.tokens_generated += k
            u.tokens_evaluated += k
        for b, i in rows:
            b.items[i][3] -= 1
        for b in batches:
            b.live = [i for i in b.live if b.items[i][3] > 0]

    def generate(self, seqs, stop=(), max_tokens=256):
        batch = self.begin_step(seqs, stop, max_tokens)
        while not batch.done:
            self.advance([batch])
        return batch.steps()

    def replay(self, items):
        """Steps another sequence generated, appended as if this one had (no compute counted:
        the real engine counts their prefill)."""
        self.replay_batches.append(len(items))
        for seq, steps in items:
            assert not seq.released
            seq.steps.extend(st.text for st in steps)
            seq.n_tokens += sum(len(st.tokens) for st in steps)
            seq.branch = 0
            self.replayed.append([st.text for st in steps])

    def reseed(self, seq, seed):
        seq.sampling = Sampling(**{**seq.sampling.__dict__, "seed": seed})

    def release(self, seq):
        if not seq.released:
            seq.released = True
            self.live.pop(seq.id, None)

    def release_all(self, seqs):
        for s in seqs:
            self.release(s)

    def release_owner(self, owner):
        seqs = [s for s in self.live.values() if s.owner == owner]
        self.release_all(seqs)
        return len(seqs)


class ScoreInTextVerifier(Verifier):
    """Scores a step by the number after '|' in its text ("... |0.75"); 0.5 if none."""

    name = "scripted"

    def __init__(self):
        self.calls: list[int] = []
        self.call_keys: list[set] = []  # the search keys in each score call
        self.forgotten: list[int] = []
        self.open: set = set()

    def begin(self, key, problem):
        self.open.add(key)

    def score(self, items: list[StepToScore]):
        self.calls.append(len(items))
        self.call_keys.append({it.key[0] for it in items})
        out = []
        for it in items:
            assert it.key in self.open, "scored before begin or after end"
            m = re.search(r"\|([0-9.]+)", it.text)
            out.append(float(m.group(1)) if m else 0.5)
        return out

    def forget(self, key, node_ids):
        self.forgotten.extend(node_ids)

    def end(self, key):
        self.open.discard(key)
