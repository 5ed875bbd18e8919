"""Everything that calls llama.cpp through ctypes lives in this module.

Two objects: `Model` (weights, vocabulary, metadata) and `Context` (one llama.cpp context with
up to 256 sequences, a KV cache, a reusable batch and one sampler chain per sequence slot).
The engine above them (`engine.py`) speaks in sequences and steps and never touches ctypes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import llama_cpp as L

_lib = L.llama_cpp._lib  # raw ctypes functions: no Python wrapper between us and llama.cpp

GGUF_MAGIC = b"GGUF"


class EngineError(Exception):
    """A model or context problem a user can act on; the message names the file."""


class EngineBug(RuntimeError):
    """A broken invariant of the engine's API (a released sequence used, one sequence in two
    steps): a bug in tts_cli or in a strategy, never the user's input. Not an EngineError, so it
    is never reported as bad input or recorded as one problem's failure: it stops the run with
    its traceback."""

    def __init__(self, message: str):
        super().__init__(f"internal error (a bug in tts_cli, please report it): {message}")


# llama.cpp logs to stderr by default; a CLI tool should stay quiet unless asked.
_verbose = bool(os.environ.get("TTS_LLAMA_LOG"))


def _log_to_stderr(level, text, user_data):  # pragma: no cover - only prints
    if _verbose:
        os.write(2, text)


_log_callback = L.llama_log_callback(_log_to_stderr)

class Terminated(KeyboardInterrupt):
    """SIGTERM: the run stops as on Ctrl-C (finished work kept), and the command exits 143."""


class PromptTooLong(EngineError):
    """A problem whose prompt does not fit a path's context: that problem's failure, not the
    run's (a batch records it and goes on)."""


# llama.cpp calls the log callback on every graph it builds (thousands of times in a run), so a
# Ctrl-C or a SIGTERM often arrives while Python runs that callback; an exception raised there
# is swallowed by ctypes and the signal is lost. The handler below defers it instead, and
# check_interrupt() raises it once the C call has returned.
_pending_signal: int | None = None


def _on_signal(signum, frame):
    global _pending_signal
    if frame is not None and frame.f_code is _log_to_stderr.__code__:
        _pending_signal = signum
        return
    _raise_for(signum)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt


def check_interrupt() -> None:
    """Raise the Ctrl-C or SIGTERM that arrived inside a llama.cpp callback, if one did."""
    global _pending_signal
    if _pending_signal is not None:
        signum, _pending_signal = _pending_signal, None
        _raise_for(signum)


def handle_termination() -> None:
    """Make SIGTERM stop a run the way Ctrl-C does (the CLI calls this; main thread only).
    Libraries that install their own SIGTERM handler (Ray) need it called again after them."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)


_initialised = False


def _init_backend() -> None:
    global _initialised
    if not _initialised:
        L.llama_log_set(_log_callback, ctypes.c_void_p(0))
        L.llama_backend_init()
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_signal)
        _initialised = True


def gpu_offload_supported() -> bool:
    return bool(L.llama_supports_gpu_offload())


def check_gguf_file(path: Path) -> None:
    """Fail with a clear message before llama.cpp sees a file it would reject less politely."""
    if not path.exists():
        raise EngineError(f"{path}: model file does not exist")
    if not path.is_file():
        raise EngineError(f"{path}: not a file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise EngineError(f"{path}: not a GGUF file (it starts with {magic!r}, GGUF files start with b'GGUF')")


@dataclass(frozen=True)
class Sampling:
    """How one sequence picks its next token. temperature 0 means greedy."""

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    ban_eos: bool = False  # benchmarks generate a fixed number of tokens
    # End of generation is banned until the sequence has sampled this many tokens: a search path
    # never ends with no text (the engine lifts the ban once they are there).
    min_tokens: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


class Model:
    """Weights and vocabulary of one GGUF file."""

    def __init__(self, path: str | os.PathLike, n_gpu_layers: int | None = None):
        _init_backend()
        self.path = Path(path)
        check_gguf_file(self.path)
        params = L.llama_model_default_params()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if gpu_offload_supported() else 0
        params.n_gpu_layers = 999 if n_gpu_layers < 0 else n_gpu_layers
        self.n_gpu_layers = n_gpu_layers
        self.offloaded = n_gpu_layers != 0 and gpu_offload_supported()
        self.ptr = L.llama_model_load_from_file(str(self.path).encode(), params)
        check_interrupt()
        if not self.ptr:
            raise EngineError(
                f"{self.path}: llama.cpp could not load this GGUF (corrupt or truncated file, "
                "or an architecture this llama.cpp does not support)")
        self.vocab = L.llama_model_get_vocab(self.ptr)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_params = int(L.llama_model_n_params(self.ptr))
        self.n_embd = L.llama_model_n_embd(self.ptr)
        self.n_layer = L.llama_model_n_layer(self.ptr)
        self.n_ctx_train = L.llama_model_n_ctx_train(self.ptr)
        self.bos = L.llama_vocab_bos(self.vocab)
        self.eos = L.llama_vocab_eos(self.vocab)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.metadata = self._read_metadata()
        self.name = self.metadata.get("general.name") or self.path.stem
        tmpl = L.llama_model_chat_template(self.ptr, None)
        self.chat_template: str | None = tmpl.decode("utf-8", "replace") if tmpl else None
        self.fold_system = False  # set by chat.render_chat when the template rejects a system message
        # One bytes object per token, so that detokenizing is a join in Python, not a C call
        # per token; and the end-of-generation flags as one array.
        self.pieces: list[bytes] = [self._piece(t) for t in range(self.n_vocab)]
        self.is_eog = np.array([bool(L.llama_vocab_is_eog(self.vocab, t)) for t in range(self.n_vocab)])
        self.eog_tokens = [int(t) for t in np.flatnonzero(self.is_eog)]

    @property
    def kv_bytes_per_cell(self) -> int:
        """KV cache bytes one token takes (f16 keys and values in every layer):
        layers x (key length + value length) x KV heads x 2 bytes."""
        arch = self.metadata.get("general.architecture", "")
        heads = int(self.metadata.get(f"{arch}.attention.head_count", 1) or 1)
        kv_heads = int(self.metadata.get(f"{arch}.attention.head_count_kv", heads) or heads)
        k = int(self.metadata.get(f"{arch}.attention.key_length", self.n_embd // heads))
        v = int(self.metadata.get(f"{arch}.attention.value_length", self.n_embd // heads))
        return self.n_layer * (k + v) * kv_heads * 2

    @property
    def size_bytes(self) -> int:
        """The weights' bytes as loaded."""
        return int(L.llama_model_size(self.ptr))

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _read_metadata(self) -> dict[str, str]:
        out = {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(L.llama_model_meta_count(self.ptr)):
            if L.llama_model_meta_key_by_index(self.ptr, i, buf, len(buf)) < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            if L.llama_model_meta_val_str_by_index(self.ptr, i, buf, len(buf)) < 0:
                continue
            out[key] = buf.value.decode("utf-8", "replace")
        return out

    def token_text(self, token: int) -> str:
        """The text of a special token such as <|im_end|> (pieces render it empty)."""
        return L.llama_vocab_get_text(self.vocab, token).decode("utf-8", "replace")

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    def close(self) -> None:
        if getattr(self, "ptr", None):
            L.llama_model_free(self.ptr)
            self.ptr = None

    def __del__(self):
        self.close()


class _Batch:
    """A llama_batch whose arrays are numpy buffers, so a step fills it with a few vector writes.

    llama_batch_init allocates one seq_id array per token; here all seq ids live in one int32
    array and `seq_id[i]` points at its i-th element, so `seq[:n] = slots` sets them all.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.token = np.zeros(capacity, np.int32)
        self.pos = np.zeros(capacity, np.int32)
        self.n_seq_id = np.ones(capacity, np.int32)
        self.seq = np.zeros(capacity, np.int32)
        self.seq_ptrs = (self.seq.ctypes.data + 4 * np.arange(capacity, dtype=np.uint64)).astype(np.uint64)
        self.logits = np.zeros(capacity, np.int8)
        b = L.llama_batch()
        i32p = ctypes.POINTER(ctypes.c_int32)
        b.token = self.token.ctypes.data_as(i32p)
        b.embd = None
        b.pos = self.pos.ctypes.data_as(i32p)
        b.n_seq_id = self.n_seq_id.ctypes.data_as(i32p)
        b.seq_id = ctypes.cast(self.seq_ptrs.ctypes.data, ctypes.POINTER(i32p))
        b.logits = self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        self.struct = b


class Context:
    """One llama.cpp context: KV cache for up to n_seq_max sequences, and their samplers.

    Sampling runs inside llama.cpp's graph ("backend sampling"): each sequence slot gets its own
    sampler chain attached to the context, and after llama_decode the sampled token is read back
    instead of the logits. Python never loops over the vocabulary.
    """

    def __init__(self, model: Model, *, n_ctx: int, n_seq_max: int, kv_unified: bool,
                 n_threads: int | None = None, n_batch: int = 512, embeddings: bool = False):
        if not 1 <= n_seq_max <= L.llama_max_parallel_sequences():
            raise EngineError(f"n_seq_max must be between 1 and {L.llama_max_parallel_sequences()}, got {n_seq_max}")
        self.model = model
        n_threads = n_threads or os.cpu_count() or 1
        n_batch = max(n_batch, n_seq_max)
        p = L.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_batch
        p.n_seq_max = n_seq_max
        p.kv_unified = kv_unified
        p.n_threads = n_threads
        p.n_threads_batch = n_threads
        p.no_perf = True
        # Attention on the CPU backend, chosen so that a sequence's logits do not depend on what
        # else is in the context:
        # - split KV (one stream per sequence): plain attention. llama.cpp's CPU flash-attention
        #   kernel makes a row's result depend on the other rows of its decode when their
        #   sequences differ in length (measured on SmolLM2: logits moved by up to 0.55); plain
        #   attention computes each row over its own stream alone, bit for bit.
        # - unified KV (sequences share one cell array): flash attention. Plain attention sums
        #   over every cell in SIMD lanes, so its rounding depends on where a sequence's cells
        #   lie among other sequences'; flash attention walks the cells one by one.
        # On a GPU, llama.cpp's default (flash attention where supported).
        if model.offloaded or kv_unified:
            p.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_AUTO
        else:
            p.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if embeddings:  # final hidden states per token, for reward heads applied outside the model
            p.embeddings = True
            p.pooling_type = L.LLAMA_POOLING_TYPE_NONE
        self.embeddings = embeddings
        self._outputs_hidden = embeddings  # what llama.cpp now computes for outputs (set_hidden_output)
        self.ptr = L.llama_init_from_model(model.ptr, p)
        check_interrupt()
        if not self.ptr:
            raise EngineError(f"{model.path}: could not create a llama.cpp context (n_ctx={n_ctx}, "
                              f"n_seq_max={n_seq_max}); out of memory?")
        self.mem = L.llama_get_memory(self.ptr)
        self.n_ctx = L.llama_n_ctx(self.ptr)
        self.n_ctx_seq = L.llama_n_ctx_seq(self.ptr)
        self.n_seq_max = n_seq_max
        # llama.cpp may lower the batch size (never above n_ctx): read back what it uses.
        self.n_batch = min(L.llama_n_batch(self.ptr), L.llama_n_ubatch(self.ptr))
        if self.n_batch < n_seq_max:
            raise EngineError(f"n_ctx={self.n_ctx} is too small for {n_seq_max} parallel sequences")
        self.kv_unified = kv_unified
        self.batch = _Batch(self.n_batch)
        self._chains: list[int | None] = [None] * n_seq_max
        self._chain_sampling: list[Sampling | None] = [None] * n_seq_max
        self._chain_fresh = [False] * n_seq_max
        self._on_backend = [False] * n_seq_max

    # --- KV cache -----------------------------------------------------------------------
    def seq_copy(self, src: int, dst: int) -> None:
        """dst shares all of src's cells (metadata only in a unified cache)."""
        L.llama_memory_seq_cp(self.mem, src, dst, -1, -1)

    def seq_pos_max(self, slot: int) -> int:
        """Largest position `slot` holds in the cache, -1 when it holds none."""
        return int(L.llama_memory_seq_pos_max(self.mem, slot))

    def seq_remove(self, slot: int, p0: int = -1, p1: int = -1) -> None:
        L.llama_memory_seq_rm(self.mem, slot, p0, p1)

    # --- samplers -------------------------------------------------------------------------
    def _new_chain(self, s: Sampling) -> int:
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if (s.ban_eos or s.min_tokens > 0) and self.model.eog_tokens:
            bias = (L.llama_logit_bias * len(self.model.eog_tokens))()
            for i, t in enumerate(self.model.eog_tokens):
                bias[i].token = t
                bias[i].bias = -float("inf")
            L.llama_sampler_chain_add(
                chain, L.llama_sampler_init_logit_bias(self.model.n_vocab, len(self.model.eog_tokens), bias))
        if s.greedy:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        else:
            # vLLM's order (temperature, then top-k/top-p), which the paper's numbers come from.
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(s.temperature))
            if s.top_k > 0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(s.top_k))
            if s.top_p < 1.0:
                L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(s.top_p, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(s.seed & 0xFFFFFFFF))
        return chain

    def set_sampling(self, slot: int, s: Sampling) -> None:
        """Give `slot` a fresh sampler for `s`: reset the attached chain when it already has these
        settings (cheap), otherwise attach a new one (llama.cpp then re-plans its graph once at
        the next decode, however many slots changed)."""
        if self._chain_sampling[slot] == s:
            if not self._chain_fresh[slot]:
                L.llama_sampler_reset(self._chains[slot])
                self._chain_fresh[slot] = True
            return
        chain = self._new_chain(s)
        # An embeddings context outputs every token; backend samplers take one output per
        # sequence, so there the chain samples on the CPU (verifiers only read, never sample).
        self._on_backend[slot] = not self.embeddings and bool(L.llama_set_sampler(self.ptr, slot, chain))
        old = self._chains[slot]
        self._chains[slot] = chain
        self._chain_sampling[slot] = s
        self._chain_fresh[slot] = True
        if old is not None:
            L.llama_sampler_free(old)

    # --- decoding -------------------------------------------------------------------------
    def decode(self, tokens, positions, slots, outputs: bool) -> int:
        """One llama_decode over len(tokens) tokens. Returns llama.cpp's status: 0 ok, 1 no KV
        space for this batch, other values are errors."""
        n = len(tokens)
        if n > self.n_batch:  # llama.cpp would abort the process
            raise EngineError(f"batch of {n} tokens is larger than n_batch={self.n_batch}")
        b = self.batch
        b.token[:n] = tokens
        b.pos[:n] = positions
        b.seq[:n] = slots
        b.logits[:n] = 1 if outputs else 0
        b.struct.n_tokens = n
        rc = L.llama_decode(self.ptr, b.struct)
        check_interrupt()
        return rc

    def sample(self, slots: list[int], greedy: list[bool]) -> tuple[list[int], list[float]]:
        """After a decode whose i-th token (an output) belongs to slots[i]: the token each
        slot's sampler drew, and its log-probability.

        The log-probability is that of the distribution the token was drawn from: the model's own
        distribution for greedy slots; after temperature (and top-k/top-p) for sampled ones.
        """
        ctx = self.ptr
        n = len(slots)
        get_token = _lib.llama_get_sampled_token_ith
        on_backend = self._on_backend
        tokens = [get_token(ctx, i) if on_backend[slot] else _lib.llama_sampler_sample(self._chains[slot], ctx, i)
                  for i, slot in enumerate(slots)]
        for slot in slots:
            self._chain_fresh[slot] = False
        # Common cases in one numpy operation over the rows llama.cpp copied back (they are in
        # batch order): all sampled from full-vocabulary probabilities, or all greedy.
        if all(on_backend[slot] for slot in slots):
            full = [self._chain_sampling[slot].top_k == 0 and self._chain_sampling[slot].top_p >= 1.0
                    for slot in slots]
            if not any(greedy) and all(full):
                rows = self._rows(_lib.llama_get_sampled_probs_ith, n)
                if rows is not None:
                    with np.errstate(divide="ignore"):
                        return tokens, np.log(rows[np.arange(n), tokens]).tolist()
            if all(greedy):
                rows = self._rows(_lib.llama_get_sampled_logits_ith, n)
                if rows is not None:
                    m = rows.max(axis=1)
                    lse = m + np.log(np.exp(rows - m[:, None]).sum(axis=1))
                    return tokens, (rows[np.arange(n), tokens] - lse).tolist()
        return tokens, [self._logprob(i, tok, greedy[i], on_backend[slot])
                        for i, (slot, tok) in enumerate(zip(slots, tokens))]

    def output_logits(self, slots: list[int]) -> np.ndarray:
        """Raw logits of the i-th output of the last decode, for each i (slot slots[i]): an
        (n, n_vocab) copy. A greedy backend chain leaves the raw logits in its output, so no
        sampler has to be detached to read them."""
        out = np.empty((len(slots), self.model.n_vocab), np.float32)
        for i, slot in enumerate(slots):
            if self._on_backend[slot]:
                if not self._chain_sampling[slot].greedy:
                    raise EngineError("logits are only available for greedy sequences")
                ptr = _lib.llama_get_sampled_logits_ith(self.ptr, i)
            else:
                ptr = _lib.llama_get_logits_ith(self.ptr, i)
            if not ptr:
                raise EngineError("no logits for this batch position")
            out[i] = np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))
        return out

    def set_hidden_output(self, on: bool) -> None:
        """In an embeddings context: whether the next decodes output hidden states. Off, llama.cpp
        outputs only the rows marked as outputs, so a prefill computes no logits for its tokens
        (on, an embeddings context outputs every token)."""
        if self.embeddings and on != self._outputs_hidden:
            L.llama_set_embeddings(self.ptr, on)
            self._outputs_hidden = on

    def output_embeddings(self, n: int) -> np.ndarray:
        """Final hidden states of the last decode's n outputs, as an (n, n_embd) copy."""
        if not self.embeddings:
            raise EngineError("this context was not created with embeddings=True")
        out = np.empty((n, self.model.n_embd), np.float32)
        for i in range(n):
            ptr = _lib.llama_get_embeddings_ith(self.ptr, i)
            if not ptr:
                raise EngineError("no hidden state for this batch position")
            out[i] = np.ctypeslib.as_array(ptr, shape=(self.model.n_embd,))
        return out

    def _rows(self, getter, n: int) -> np.ndarray | None:
        """The n per-output rows of n_vocab floats that `getter` points into, as one array, or
        None if they are not laid out contiguously."""
        first = getter(self.ptr, 0)
        last = getter(self.ptr, n - 1)
        if not first or not last:
            return None
        stride = self.model.n_vocab * 4
        if ctypes.addressof(last.contents) - ctypes.addressof(first.contents) != (n - 1) * stride:
            return None
        return np.ctypeslib.as_array(first, shape=(n, self.model.n_vocab))

    def _logprob(self, i: int, tok: int, greedy: bool, on_backend: bool) -> float:
        if on_backend and not greedy:
            probs = _lib.llama_get_sampled_probs_ith(self.ptr, i)
            if probs:
                cand = _lib.llama_get_sampled_candidates_ith(self.ptr, i)
                n = _lib.llama_get_sampled_probs_count_ith(self.ptr, i)
                if n == self.model.n_vocab and cand and cand[tok] == tok:
                    p = probs[tok]
                else:
                    ids = np.ctypeslib.as_array(cand, shape=(n,))
                    where = np.flatnonzero(ids == tok)
                    p = probs[int(where[0])] if len(where) else 0.0
                return float(np.log(p)) if p > 0 else float("-inf")
        if on_backend:
            ptr = _lib.llama_get_sampled_logits_ith(self.ptr, i)
            n = _lib.llama_get_sampled_logits_count_ith(self.ptr, i)
        else:
            ptr = _lib.llama_get_logits_ith(self.ptr, i)
            n = self.model.n_vocab
        if not ptr or n != self.model.n_vocab:
            return float("nan")
        logits = np.ctypeslib.as_array(ptr, shape=(n,))
        m = float(logits.max())
        return float(logits[tok]) - m - float(np.log(np.exp(logits - m).sum()))

    def synchronize(self) -> None:
        """Wait for the device: llama_decode may return before a GPU has finished."""
        L.llama_synchronize(self.ptr)

    def close(self) -> None:
        if getattr(self, "ptr", None):
            L.llama_free(self.ptr)
            self.ptr = None
        for c in getattr(self, "_chains", []):
            if c is not None:
                L.llama_sampler_free(c)
        self._chains = []

    def __del__(self):
        self.close()


def device_memory(on_gpu: bool) -> tuple[float, str]:
    """(free bytes, where) on the devices a run's KV caches go to: the GPUs llama.cpp sees when
    the model is offloaded (their free memory added up), else this machine's available RAM."""
    _init_backend()
    lib = _lib
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                            ctypes.POINTER(ctypes.c_size_t)]
    if on_gpu:
        free, names = 0.0, []
        for i in range(lib.ggml_backend_dev_count()):
            dev = lib.ggml_backend_dev_get(i)
            if lib.ggml_backend_dev_type(dev) == 0:  # GGML_BACKEND_DEVICE_TYPE_CPU
                continue
            f, t = ctypes.c_size_t(), ctypes.c_size_t()
            lib.ggml_backend_dev_memory(dev, ctypes.byref(f), ctypes.byref(t))
            free += f.value
            names.append(lib.ggml_backend_dev_name(dev).decode(errors="replace"))
        if names:
            return free, ", ".join(names)
    try:  # llama.cpp reports the CPU's total as free; the kernel knows what is available
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    return float(available), "CPU RAM"
