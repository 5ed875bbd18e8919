"""The `tts` command. Commands parse options, call the library, and render; nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .engine import EngineError
from .models import SMOLLM2_HINT, smollm2_path

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Test-time scaling for small local GGUF models (llama.cpp).")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Test-time scaling for small local GGUF models (llama.cpp)."""


class UserError(Exception):
    """Bad input: reported as one line, exit code 2."""


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def default_model() -> Path:
    path = smollm2_path()
    if path is None:
        raise UserError(SMOLLM2_HINT)
    return path


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option}: expected comma-separated integers such as 1,4,16, got {text!r}")
    if not values or any(v < 1 for v in values):
        raise UserError(f"{option}: every value must be >= 1, got {text!r}")
    return values


@app.command()
def bench(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="GGUF file (default: bundled SmolLM2-135M-Instruct)."),
    n: str = typer.Option("1,4,16,64", "--n", help="Comma-separated numbers of parallel sequences."),
    tokens: int = typer.Option(128, "--tokens", min=1, help="Tokens generated per sequence."),
    kv: str = typer.Option("auto", "--kv", help="KV cache layout: auto, unified, split, or both (measure each)."),
    naive: bool = typer.Option(True, "--naive/--no-naive", help="Also time a loop of Llama.create_completion."),
    naive_max_n: int = typer.Option(64, "--naive-max-n", help="Skip the naive loop above this N (it is linear in N)."),
    raw: bool = typer.Option(True, "--raw/--no-raw", help="Also time llama_decode alone at each N."),
    gpu_layers: Optional[int] = typer.Option(None, "--gpu-layers", help="Layers to offload (default: all if a GPU backend exists; 0 = CPU)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
):
    """Engine throughput against a naive loop of Llama.create_completion.

    Example: tts bench --n 16 --tokens 128
    """
    from .bench import run_bench

    try:
        if kv not in ("auto", "unified", "split", "both"):
            raise UserError(f"--kv: expected auto, unified, split or both, got {kv!r}")
        ns = parse_int_list(n, "--n")
        if max(ns) > 256:
            raise UserError("--n: at most 256 parallel sequences (llama.cpp's limit)")
        model_path = model or default_model()
        table = Table(title=f"tts bench: {model_path.name}, {tokens} tokens per sequence")
        for col in ("N", "KV", "engine tok/s", "naive tok/s", "speedup", "raw decode tok/s",
                    "engine/raw", "prefill engine", "prefill naive", "peak RSS MB"):
            table.add_column(col, justify="right")

        def show(row):
            if not as_json:
                table.add_row(str(row.n), row.kv, f"{row.engine_tok_s:.1f}", _fmt(row.naive_tok_s),
                              _fmt(row.speedup, "{:.2f}x"), _fmt(row.raw_decode_tok_s),
                              _fmt(row.engine_vs_raw, "{:.2f}"), str(row.engine_prefill_tokens),
                              _fmt(row.naive_prefill_tokens, "{}"), f"{row.engine_peak_rss_mb:.0f}")

        with console.status("benchmarking...", spinner="dots") if not as_json else _null():
            rows = run_bench(str(model_path), ns, tokens, naive=naive, naive_max_n=naive_max_n, kv=kv,
                             n_gpu_layers=gpu_layers, n_threads=threads, raw=raw, on_row=show)
    except (UserError, EngineError) as e:
        fail(str(e))
    if as_json:
        from .engine import gpu_offload_supported
        print(json.dumps({"model": str(model_path), "tokens": tokens, "gpu_offload": gpu_offload_supported(),
                          "threads": threads or os.cpu_count(), "rows": [r.as_dict() for r in rows]}))
    else:
        console.print(table)


def _fmt(value, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    app()
