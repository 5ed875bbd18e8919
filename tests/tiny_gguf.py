"""Writes a tiny random-weight llama-architecture GGUF in milliseconds.

The model is nonsense, but every code path of the engine (tokenizer, batching, KV forks,
samplers, context limits) runs on it exactly as on a real model.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

# Pieces beyond the byte fallback tokens: single characters and a few words, so that text
# such as "2 + 3 = 5" or "ки" tokenizes into real pieces (the PRM tests need "+", "-", "ки").
_WORDS = ["\u2581the", "\u2581is", "\u2581answer", "\u2581Yes", "\u2581No", "Yes", "No", "\u043a\u0438", "\u2581\u043a\u0438"]


def tiny_vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces = ["\u2581"] + [c for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += ["\u2581" + c for c in string.ascii_lowercase + string.digits] + _WORDS
    tokens += pieces
    types += [1] * len(pieces)
    # SentencePiece merges by score: longer pieces first.
    scores = [0.0] * 259 + [float(len(p)) for p in pieces]
    return tokens, scores, types


def write_tiny_llama(path: Path, *, n_embd: int = 64, n_layer: int = 2, n_head: int = 4,
                     n_head_kv: int = 2, n_ff: int = 128, n_ctx_train: int = 4096,
                     seed: int = 0, chat_template: str | None = None, quantized: bool = False,
                     endless: bool = False) -> Path:
    """quantized=True stores the weight matrices in Q4_1, as SmolLM2's GGUF does. llama.cpp's CPU
    kernels for F32 weights round differently with the number of rows in a batch (about 1e-6);
    its Q4_1 kernels compute each row alone, so results do not depend on what else is in the
    batch (the concurrency tests need that).

    endless=True zeroes the end-of-text token's output row: its logit is 0 while the others
    spread over about +-10, so paths (almost) never end on their own and a search runs to its
    step and token limits (for tests that need a search still in flight)."""
    import gguf

    tokens, scores, types = tiny_vocab()
    n_vocab = len(tokens)
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(3 if quantized else 0)  # MOSTLY_Q4_1 or all F32
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    rng = np.random.default_rng(seed)

    def rnd(*shape: int):
        # Large-ish weights so that logits are peaked: greedy decoding then has no near-ties
        # that batch-size-dependent float rounding could flip.
        data = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        if quantized and len(shape) == 2:
            return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q4_1)
        return data

    def add(name, data):
        if data.dtype == np.uint8:
            w.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q4_1)
        else:
            w.add_tensor(name, data)

    add("token_embd.weight", rnd(n_vocab, n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        add(f"blk.{i}.attn_q.weight", rnd(n_embd, n_embd))
        add(f"blk.{i}.attn_k.weight", rnd(n_head_kv * head_dim, n_embd))
        add(f"blk.{i}.attn_v.weight", rnd(n_head_kv * head_dim, n_embd))
        add(f"blk.{i}.attn_output.weight", rnd(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        add(f"blk.{i}.ffn_gate.weight", rnd(n_ff, n_embd))
        add(f"blk.{i}.ffn_up.weight", rnd(n_ff, n_embd))
        add(f"blk.{i}.ffn_down.weight", rnd(n_embd, n_ff))
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    output = rnd(n_vocab, n_embd)
    if endless:
        assert not quantized, "endless models are F32"
        output[2] = 0.0  # the end-of-text token (id 2)
    add("output.weight", output)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)
