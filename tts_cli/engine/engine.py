"""The engine: sequences that share KV prefixes, and steps generated for many sequences at once.

A sequence's state is (its tokens in the KV cache, one pending token). The pending token is the
last token the sequence holds but llama.cpp has not evaluated yet: generating evaluates it and
samples the next one in the same llama_decode. So a prompt is prefilled once (all but its last
token), a fork copies KV metadata and the pending token, and every child evaluates that one
token itself in its first generation step. Nothing is ever evaluated twice.
"""

from __future__ import annotations

import heapq
import os
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np

from .llamacpp import Context, EngineBug, EngineError, Model, PromptTooLong, Sampling

STOP_REASONS = ("stop", "eos", "length", "context")

# Up to this many sequences a unified KV cache (shared prefixes stored once, forks are free)
# is used; above it, per-sequence streams, because in a unified cache every sequence's
# attention scans every cell in use. Measured with `tts bench --kv both` on CPU and on an H200;
# see README "KV cache layout".
UNIFIED_KV_MAX_SEQUENCES = 8


def choose_kv_unified(n_seq_max: int) -> bool:
    return n_seq_max <= UNIFIED_KV_MAX_SEQUENCES


@dataclass
class Step:
    """What one sequence produced in one generation step."""

    text: str
    tokens: list[int]
    logprobs: list[float]
    stop_reason: str  # one of STOP_REASONS
    # An engine made with hidden=True: the final hidden state from which the step's last token
    # (an end-of-generation token included) was sampled (Sequence.hidden); else None.
    hidden: np.ndarray | None = None


@dataclass
class Stats:
    """Counters for one loaded model."""

    n_params: int
    tokens_prefilled: int = 0  # prompt/appended tokens evaluated without sampling
    tokens_generated: int = 0  # tokens sampled
    tokens_evaluated: int = 0  # everything that went through llama_decode
    decode_calls: float = 0  # per search: its share of the calls it was in (rows / batch rows)
    seconds: float = 0.0

    @property
    def flops(self) -> float:
        return 2.0 * self.n_params * self.tokens_evaluated

    def as_dict(self) -> dict:
        return {
            "n_params": self.n_params,
            "tokens_prefilled": self.tokens_prefilled,
            "tokens_generated": self.tokens_generated,
            "tokens_evaluated": self.tokens_evaluated,
            "decode_calls": round(self.decode_calls, 4),
            "seconds": round(self.seconds, 4),
            "flops": self.flops,
        }


@dataclass(eq=False)
class Sequence:
    """A handle on one sequence. `tokens` is everything it holds, prompt included."""

    slot: int
    sampling: Sampling
    tokens: list[int] = field(default_factory=list)
    n_past: int = 0  # tokens in the KV cache
    pending: int | None = None  # last token, not yet evaluated
    ended: str | None = None  # "eos" or "context": it cannot generate any more
    n_forks: int = 0
    released: bool = False
    owner: object = None  # whose compute this sequence's tokens are (a search); forks inherit it
    generated: int = 0  # tokens sampled since its prompt (a fork counts its parent's)
    # An engine made with hidden=True: the final hidden state (n_embd float32) of the row the
    # latest token was sampled from, i.e. at the last of the first `hidden_at` tokens (a
    # sampled end-of-generation token is not in `tokens`). Forks inherit it.
    hidden: np.ndarray | None = None
    hidden_at: int = 0

    @property
    def can_generate(self) -> bool:
        return not self.released and self.ended is None and self.pending is not None


def derive_seed(seed: int, fork: int, child: int) -> int:
    """A child's seed from its parent's: deterministic, and distinct across forks and children."""
    x = (seed * 0x9E3779B1 + fork * 0x85EBCA77 + child * 0xC2B2AE3D + 0x27D4EB2F) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 29
    x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 32
    return x & 0x7FFFFFFF


def kv_cells_needed(prompt_tokens: int, n_sequences: int, new_tokens_per_sequence: int,
                    unified: bool = True) -> int:
    """Context size (KV cells) for n sequences that share a prompt and each add new tokens.

    Unified: the shared prompt is stored once. Split: every sequence has a stream of its own
    holding its own copy of the prompt.
    """
    if unified:
        return prompt_tokens + n_sequences * new_tokens_per_sequence + 16
    return n_sequences * (prompt_tokens + new_tokens_per_sequence + 16)


class StepBatch:
    """The next step of some sequences, in progress. `Engine.advance` moves every live sequence of
    many batches on by one token in one llama_decode; a batch is done when all its sequences
    have ended their step. (`Engine.generate` is one batch advanced until done.)"""

    def __init__(self, seqs: list[Sequence], stop: tuple[str, ...] | list[str], max_tokens: int):
        self.seqs = seqs
        self.stop_b = [s.encode("utf-8") for s in stop if s]
        self.max_tokens = max_tokens
        self.bufs = [bytearray() for _ in seqs]
        self.tokens: list[list[int]] = [[] for _ in seqs]
        self.logprobs: list[list[float]] = [[] for _ in seqs]
        self.reasons: list[str | None] = [None] * len(seqs)
        for i, s in enumerate(seqs):
            if s.released:
                raise EngineBug("cannot generate from a released sequence")
            if not s.can_generate:
                self.reasons[i] = s.ended or "eos"
        self.live = [i for i in range(len(seqs)) if self.reasons[i] is None]
        if len(set(seqs[i].slot for i in self.live)) != len(self.live):
            raise EngineBug("the same sequence was passed twice")

    @property
    def done(self) -> bool:
        return not self.live

    def end(self, i: int, reason: str) -> None:
        self.reasons[i] = reason

    def take(self, i: int, tok: int, lp: float, piece: bytes) -> None:
        """Record sequence i's new token and whether it ends the step."""
        self.tokens[i].append(tok)
        self.logprobs[i].append(lp)
        buf = self.bufs[i]
        buf += piece
        stop_b = self.stop_b
        if stop_b and any(sb in buf[max(0, len(buf) - len(piece) - len(sb) + 1):] for sb in stop_b):
            self.reasons[i] = "stop"
        elif len(self.tokens[i]) >= self.max_tokens:
            self.reasons[i] = "length"

    def steps(self) -> list[Step]:
        return [Step(text=bytes(self.bufs[i]).decode("utf-8", "replace"), tokens=self.tokens[i],
                     logprobs=self.logprobs[i], stop_reason=self.reasons[i], hidden=self.seqs[i].hidden)
                for i in range(len(self.seqs))]


class Engine:
    """One model, one context, up to n_seq_max live sequences.

    Verbs: start (prefill a prompt once), fork (k children sharing the KV prefix), extend
    (append text/tokens to many sequences in one batch; `replay` when another sequence sampled
    them), reseed, generate (the next step of many
    sequences, one llama_decode per token position; `begin_step` + `advance` do the same for
    steps of many callers at once), release.

    Compute is counted in total (`stats`) and per owner (`usage[owner]`, an owner being a
    search): a llama_decode shared by several owners is split by the rows each had in it, so
    the owners' counters add up to the totals.

    hidden=True makes the context an embeddings context that still samples: after each
    generation decode every row's final hidden state is kept on its sequence (`Sequence.hidden`,
    n_embd floats), for a value head on the policy's own model. Off by default.
    """

    def __init__(self, model: str | os.PathLike | Model, *, n_ctx: int = 8192, n_seq_max: int = 16,
                 n_gpu_layers: int | None = None, n_threads: int | None = None,
                 kv_unified: bool | None = None, n_batch: int = 512, seed: int = 0,
                 prefill_chunk: int | None = None, embeddings: bool = False, hidden: bool = False,
                 prompt_cache_slots: int = 1, owns_model: bool | None = None):
        # A loaded Model can be shared by several engines (the benchmark makes one per N).
        # A Model passed in stays its owner's, unless `owns_model` hands it over (closed with us).
        self._owns_model = owns_model if owns_model is not None else not isinstance(model, Model)
        self.model = model if isinstance(model, Model) else Model(model, n_gpu_layers=n_gpu_layers)
        if kv_unified is None:
            kv_unified = choose_kv_unified(n_seq_max)
        # hidden: every generation step also keeps each row's final hidden state on its sequence
        # (a value head on the policy's own model reads it: no second context, no second pass).
        self.hidden = hidden
        self.ctx = Context(self.model, n_ctx=n_ctx, n_seq_max=n_seq_max, kv_unified=kv_unified,
                           n_threads=n_threads, n_batch=n_batch, embeddings=embeddings or hidden)
        self.seed = seed
        # On the CPU backend, llama.cpp's flash attention switches to a tiled kernel at 64 query
        # rows, which rounds differently: prefilling at most 63 tokens per llama_decode makes a
        # text's logits independent of how it was split into calls (a verifier's incremental
        # scores then equal scores computed from scratch), for about 10% of prefill speed.
        if prefill_chunk is None:
            prefill_chunk = self.ctx.n_batch if self.model.offloaded else 63
        self.prefill_chunk = max(1, min(prefill_chunk, self.ctx.n_batch))
        self.stats = Stats(n_params=self.model.n_params)
        self.usage: dict[object, Stats] = {}
        # Free slots as a min-heap: a new sequence takes the lowest one. With a split KV cache
        # llama.cpp cuts a decode into one micro-batch per run of consecutive sequence ids, so
        # live sequences packed low cost less (measured on CPU: 8 rows on slots 0-7 took 45 ms
        # per decode, on slots 0, 4, ..., 28 80 ms).
        self._free_slots = list(range(n_seq_max))
        self._live: dict[int, Sequence] = {}  # slot -> sequence
        # Prompts kept (one slot each) for later searches on the same problem or with the same
        # prefix. A caller that fills every slot with sequences should leave these free.
        self.prompt_cache_slots = prompt_cache_slots
        self._prompt_cache: OrderedDict[tuple[int, ...], Sequence] = OrderedDict()
        self._n_started = 0

    # --- information ----------------------------------------------------------------------
    @property
    def n_seq_max(self) -> int:
        return self.ctx.n_seq_max

    @property
    def free_slots(self) -> int:
        """Slots a caller can still take (cached prompts give way when needed)."""
        return len(self._free_slots) + len(self._prompt_cache)

    def live_sequences(self, owner=None) -> list[Sequence]:
        """Sequences not released (cached prompts excluded); only `owner`'s when given."""
        cached = {id(s) for s in self._prompt_cache.values()}
        return [s for s in self._live.values() if id(s) not in cached and (owner is None or s.owner == owner)]

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        return self.model.tokenize(text, add_special=add_special, parse_special=True)

    def detokenize(self, tokens: list[int]) -> str:
        pieces = self.model.pieces
        return b"".join(pieces[t] for t in tokens).decode("utf-8", "replace")

    def text(self, seq: Sequence, start: int = 0) -> str:
        return self.detokenize(seq.tokens[start:])

    # --- sequence lifecycle ---------------------------------------------------------------
    def _take_slot(self) -> int:
        if not self._free_slots and self._prompt_cache:
            _, oldest = self._prompt_cache.popitem(last=False)  # cached prompts give way
            self.release(oldest)
        if not self._free_slots:
            raise EngineError(f"all {self.n_seq_max} sequence slots are in use; release some or "
                              "create the engine with a larger n_seq_max")
        return heapq.heappop(self._free_slots)

    def _new_sequence(self, sampling: Sampling, owner, parent: Sequence | None = None) -> Sequence:
        seq = Sequence(slot=self._take_slot(), sampling=sampling, owner=owner)
        if parent is not None:
            seq.tokens, seq.n_past, seq.pending, seq.ended = list(parent.tokens), parent.n_past, parent.pending, parent.ended
            seq.generated, seq.hidden, seq.hidden_at = parent.generated, parent.hidden, parent.hidden_at
        self._live[seq.slot] = seq
        self.ctx.seq_remove(seq.slot)
        if parent is not None:
            self.ctx.seq_copy(parent.slot, seq.slot)
        self.ctx.set_sampling(seq.slot, sampling)
        return seq

    def start(self, prompt: str | list[int], sampling: Sampling | None = None, *, cache: bool = False,
              owner=None) -> Sequence:
        """A new sequence holding `prompt` (text is tokenized with the model's BOS rules).

        cache=True reuses and keeps prompts' KV cells (one slot each, up to prompt_cache_slots
        prompts): a cached prompt that shares a prefix with this one is copied and only the
        rest is prefilled. So a search in two stages, several searches on one problem, and
        problems that share a system prompt or few-shot examples read the shared part once (the
        prefill is counted for the owner that did it). On the CPU backend prefill chunks keep
        logits independent of where a prefill starts (see prefill_chunk), so reuse changes
        nothing in the results.
        """
        tokens = self.tokenize(prompt, add_special=True) if isinstance(prompt, str) else list(prompt)
        if sampling is None:
            sampling = Sampling(seed=derive_seed(self.seed, 0, self._n_started))
        self._n_started += 1
        if not tokens:
            raise EngineError("empty prompt")
        key = tuple(tokens)
        if cache and key in self._prompt_cache:
            self._prompt_cache.move_to_end(key)
            return self._new_sequence(sampling, owner, parent=self._prompt_cache[key])
        if not self._fits(0, len(tokens)):
            raise PromptTooLong(f"prompt of {len(tokens)} tokens does not fit the context "
                              f"({self.ctx.n_ctx_seq} tokens per sequence)")
        base, shared = self._longest_cached_prefix(tokens) if cache else (None, 0)
        seq = self._new_sequence(sampling, owner, parent=base)
        if base is not None:  # keep the shared cells, drop the rest
            self.ctx.seq_remove(seq.slot, shared, -1)
            seq.tokens, seq.n_past, seq.pending, seq.ended = tokens[:shared], shared, None, None
        self.extend([(seq, tokens[shared:])])
        if cache and seq.ended is None:
            while self._prompt_cache and (len(self._prompt_cache) >= self.prompt_cache_slots or not self._free_slots):
                self.release(self._prompt_cache.popitem(last=False)[1])
            if self._free_slots and self.prompt_cache_slots > 0:
                self._prompt_cache[key] = self._new_sequence(sampling, None, parent=seq)
        return seq

    MIN_SHARED_PREFIX = 16  # shorter shared prefixes are not worth a KV copy

    def _longest_cached_prefix(self, tokens: list[int]) -> tuple[Sequence | None, int]:
        """The cached prompt sharing the longest evaluated prefix with `tokens` (leaving at least
        the last token to evaluate), and that prefix's length."""
        best, best_n = None, 0
        for cached in self._prompt_cache.values():
            limit = min(cached.n_past, len(tokens) - 1)
            n = 0
            while n < limit and cached.tokens[n] == tokens[n]:
                n += 1
            if n > best_n:
                best, best_n = cached, n
        if best_n < self.MIN_SHARED_PREFIX:
            return None, 0
        self._prompt_cache.move_to_end(tuple(best.tokens))
        return best, best_n

    def fork(self, seq: Sequence, k: int, sampling: Sampling | list[Sampling] | None = None) -> list[Sequence]:
        """k children that share everything `seq` holds (and its owner); each gets its own sampler
        seed."""
        if seq.released:
            raise EngineBug("cannot fork a released sequence")
        children = []
        for i in range(k):
            if isinstance(sampling, list):
                s = sampling[i]
            elif sampling is not None:
                s = sampling
            else:
                s = replace(seq.sampling, seed=derive_seed(seq.sampling.seed, seq.n_forks, i))
            children.append(self._new_sequence(s, seq.owner, parent=seq))
        seq.n_forks += 1
        return children

    def release(self, seq: Sequence) -> None:
        if seq.released:
            return
        self.ctx.seq_remove(seq.slot)
        seq.released = True
        self._live.pop(seq.slot, None)
        heapq.heappush(self._free_slots, seq.slot)

    def release_all(self, seqs) -> None:
        for s in seqs:
            self.release(s)

    def release_owner(self, owner) -> int:
        """Release every live sequence of `owner` (a search that ended, however it ended)."""
        seqs = self.live_sequences(owner)
        self.release_all(seqs)
        return len(seqs)

    # --- compute accounting -----------------------------------------------------------------
    def _charge(self, owners: list, seconds: float, kind: str) -> None:
        """Count one llama_decode of len(owners) rows, in total and per owner. kind: prefilled
        or generated."""
        n = len(owners)
        self.stats.decode_calls += 1
        self.stats.seconds += seconds
        self.stats.tokens_evaluated += n
        setattr(self.stats, f"tokens_{kind}", getattr(self.stats, f"tokens_{kind}") + n)
        if not n:
            return
        for owner, k in Counter(owners).items():
            u = self.usage.get(owner)
            if u is None:
                u = self.usage[owner] = Stats(n_params=self.model.n_params)
            u.decode_calls += k / n
            u.seconds += seconds * k / n
            u.tokens_evaluated += k
            setattr(u, f"tokens_{kind}", getattr(u, f"tokens_{kind}") + k)

    # --- evaluation -----------------------------------------------------------------------
    def extend(self, items: list[tuple[Sequence, str | list[int]]]) -> None:
        """Append text or tokens to sequences; all of them are prefilled in shared batches.

        A sequence that would outgrow its context is marked ended with reason "context" and
        keeps what it had.
        """
        work = []  # (seq, tokens to evaluate now)
        for seq, add in items:
            if seq.released:
                raise EngineBug("cannot extend a released sequence")
            new = self.tokenize(add) if isinstance(add, str) else list(add)
            if any(not 0 <= t < self.model.n_vocab for t in new):
                raise EngineError(f"token id outside the vocabulary (0..{self.model.n_vocab - 1})")
            if not new or seq.ended is not None:
                continue
            if not self._fits(seq.n_past, len(new)):
                seq.ended = "context"
                continue
            evaluate = ([seq.pending] if seq.pending is not None else []) + new[:-1]
            seq.tokens.extend(new)
            seq.pending = new[-1]
            work.append((seq, evaluate))
        self._prefill(work)

    def replay(self, items: list[tuple[Sequence, list[Step]]]) -> None:
        """Append steps that another sequence generated from the same context, as if this one had
        (steps replayed from a memo of shared draws): their tokens prefilled like `extend`, and
        counted as generated, so a min_tokens ban lifts as it would have."""
        items = [(seq, [t for st in steps for t in st.tokens]) for seq, steps in items]
        self.extend(items)
        for seq, tokens in items:
            self._count_generated(seq, len(tokens))

    def _count_generated(self, seq: Sequence, k: int) -> None:
        """k more tokens generated by (or replayed into) the sequence: once it has min_tokens of
        them, end of generation is allowed again."""
        seq.generated += k
        if seq.sampling.min_tokens and seq.generated >= seq.sampling.min_tokens and not seq.released:
            seq.sampling = replace(seq.sampling, min_tokens=0)
            self.ctx.set_sampling(seq.slot, seq.sampling)

    def reseed(self, seq: Sequence, seed: int) -> None:
        """Sample the sequence's next tokens with a fresh sampler seeded `seed` (a shared draw's
        own seed: memo.draw_seed)."""
        seq.sampling = replace(seq.sampling, seed=seed)
        self.ctx.set_sampling(seq.slot, seq.sampling)

    def commit(self, seqs: list[Sequence]) -> None:
        """Evaluate the pending tokens of `seqs` now, in shared batches, without sampling.

        For sequences that will be forked only to be read or extended (a verifier's): the forks
        then share the token's KV cell instead of each evaluating it again. (Sequences that will
        generate keep theirs pending: each child needs that row anyway to sample its own token.)
        """
        work = []
        for seq in seqs:
            if seq.pending is not None and seq.ended is None and not seq.released:
                work.append((seq, [seq.pending]))
                seq.pending = None
        self._prefill(work)

    def _fits(self, n_past: int, k: int = 1) -> bool:
        """Whether a sequence holding n_past cells can take k more tokens (its pending one
        included) and still have a cell left for the token after them: the one place that
        decides the context limit (a prompt, an extension, a generated token, a read)."""
        return n_past + k + 1 <= self.ctx.n_ctx_seq

    def _prefill(self, work: list[tuple[Sequence, list[int]]]) -> None:
        if self.hidden:  # a policy's prefill needs no hidden states (nor logits for every token)
            self.ctx.set_hidden_output(False)
        n_batch = self.prefill_chunk
        tokens: list[int] = []
        pos: list[int] = []
        slots: list[int] = []
        owners: list[Sequence] = []

        def flush():
            if not tokens:
                return
            t0 = time.perf_counter()
            rc = self.ctx.decode(tokens, pos, slots, outputs=False)
            if rc != 0:
                self._charge([], time.perf_counter() - t0, "prefilled")
                self._fail_prefill(rc, owners)
            else:
                self._charge([s.owner for s in owners], time.perf_counter() - t0, "prefilled")
            tokens.clear(), pos.clear(), slots.clear(), owners.clear()

        for seq, evaluate in sorted(work, key=lambda w: w[0].slot):  # slot order, as in advance()
            for tok in evaluate:
                tokens.append(tok)
                pos.append(seq.n_past)
                slots.append(seq.slot)
                owners.append(seq)
                seq.n_past += 1
                if len(tokens) == n_batch:
                    flush()
        flush()

    def _fail_prefill(self, rc: int, owners: list[Sequence]) -> None:
        if rc != 1:
            raise EngineError(f"llama_decode failed with status {rc}")
        # No KV space: llama.cpp rolled the batch back; the sequences in it end here.
        for seq in set(owners):
            seq.ended = "context"
            seq.n_past = self.ctx.seq_pos_max(seq.slot) + 1

    def generate(self, seqs: list[Sequence], *, stop: tuple[str, ...] | list[str] = ("\n\n",),
                 max_tokens: int = 256) -> list[Step]:
        """Generate the next step of every sequence in `seqs` together.

        Each llama_decode holds the next token of every live sequence. A sequence's step ends
        when its text contains a stop string ("stop"), at end of generation ("eos"), after
        max_tokens ("length"), or when its context is full ("context"). The stop string stays in
        the step text, so the steps of a sequence concatenate to its full text.
        """
        batch = self.begin_step(seqs, stop=stop, max_tokens=max_tokens)
        while not batch.done:
            self.advance([batch])
        return batch.steps()

    def begin_step(self, seqs: list[Sequence], *, stop: tuple[str, ...] | list[str] = ("\n\n",),
                   max_tokens: int = 256) -> StepBatch:
        """The next step of `seqs`, to be moved on by `advance` (with other callers' steps)."""
        return StepBatch(seqs, stop, max_tokens)

    def advance(self, batches: list[StepBatch]) -> None:
        """One token for every live sequence of every batch, in one llama_decode."""
        for b in batches:  # a sequence at the end of its context cannot take another token
            for i in [i for i in b.live if not self._fits(b.seqs[i].n_past)]:
                b.end(i, "context")
                b.seqs[i].ended = "context"
            b.live = [i for i in b.live if b.reasons[i] is None]
        # Rows in slot order: llama.cpp splits a batch whose sequences come out of order into
        # several micro-batches (measured on CPU, 32 rows: 8.8 ms per row shuffled, 5.5 sorted).
        rows = sorted(((b, i) for b in batches for i in b.live), key=lambda r: r[0].seqs[r[1]].slot)
        if not rows:
            return
        seqs = [b.seqs[i] for b, i in rows]
        if len({s.slot for s in seqs}) != len(seqs):
            raise EngineBug("the same sequence is in two steps at once")
        t0 = time.perf_counter()
        if self.hidden:
            self.ctx.set_hidden_output(True)
        rc = self.ctx.decode([s.pending for s in seqs], [s.n_past for s in seqs], [s.slot for s in seqs],
                             outputs=True)
        if rc == 1:  # the KV cache is full: no sequence of this batch can take a token
            self._charge([], time.perf_counter() - t0, "generated")
            for b, i in rows:
                b.end(i, "context")
                b.seqs[i].ended = "context"
            for b in batches:
                b.live = []
            return
        if rc != 0:
            raise EngineError(f"llama_decode failed with status {rc}")
        toks, lps = self.ctx.sample([s.slot for s in seqs], [s.sampling.greedy for s in seqs])
        if self.hidden:
            for s, h in zip(seqs, self.ctx.output_embeddings(len(seqs))):
                s.hidden, s.hidden_at = h, s.n_past + 1  # the row of the pending token at n_past
        self._charge([s.owner for s in seqs], time.perf_counter() - t0, "generated")
        pieces = self.model.pieces
        is_eog = self.model.is_eog
        for (b, i), s, tok, lp in zip(rows, seqs, toks, lps):
            s.n_past += 1
            self._count_generated(s, 1)
            if is_eog[tok]:  # not part of the text: the sequence just ends
                s.pending = None
                s.ended = "eos"
                b.end(i, "eos")
                continue
            s.tokens.append(tok)
            s.pending = tok
            b.take(i, tok, lp, pieces[tok])
        for b in batches:
            b.live = [i for i in b.live if b.reasons[i] is None]

    def next_token_logprobs(self, seqs: list[Sequence], token_ids: list[int]) -> list[list[float]]:
        """log P(t) for each t in token_ids at the position after each sequence's last token,
        all sequences in one llama_decode. This is how verifiers read a model's judgement.

        The sequences must be greedy (their samplers leave the raw logits readable). Afterwards
        they hold no pending token: they can be extended or forked, not generated from.
        """
        def read(slots):
            rows = self.ctx.output_logits(slots)
            m = rows.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(rows - m).sum(axis=1))
            return (rows[:, token_ids] - lse[:, None]).tolist()
        return self._evaluate_last(seqs, read)

    def hidden_states(self, seqs: list[Sequence]) -> np.ndarray:
        """The final hidden state at each sequence's last token (an engine made with
        embeddings=True), for reward heads applied outside the model. Same batching and
        afterwards-state as next_token_logprobs."""
        rows = self._evaluate_last(seqs, lambda slots: list(self.ctx.output_embeddings(len(slots))))
        return np.array(rows, dtype=np.float32).reshape(len(seqs), self.model.n_embd)

    def _evaluate_last(self, seqs: list[Sequence], read) -> list:
        if not seqs:
            return []
        for s in seqs:
            if s.released or s.pending is None:
                raise EngineBug("reading a position needs live sequences with a pending token")
            if not s.sampling.greedy:
                raise EngineBug("reading a position needs greedy sequences")
            if not self._fits(s.n_past):
                raise EngineError("sequence is at the end of its context")
        out: list = [None] * len(seqs)
        chunk = self.prefill_chunk
        order = sorted(range(len(seqs)), key=lambda i: seqs[i].slot)  # slot order, as in advance()
        for i in range(0, len(seqs), chunk):
            idx = order[i:i + chunk]
            part = [seqs[j] for j in idx]
            slots = [s.slot for s in part]
            t0 = time.perf_counter()
            self.ctx.set_hidden_output(True)
            rc = self.ctx.decode([s.pending for s in part], [s.n_past for s in part], slots, outputs=True)
            if rc != 0:
                raise EngineError("the KV cache is full" if rc == 1 else f"llama_decode failed with status {rc}")
            for j, row in zip(idx, read(slots)):
                out[j] = row
            self._charge([s.owner for s in part], time.perf_counter() - t0, "prefilled")
            for s in part:
                s.n_past += 1
                s.pending = None
        return out

    def close(self) -> None:
        self.ctx.close()
        if self._owns_model:
            self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
