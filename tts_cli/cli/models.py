"""The model registry (`tts models list|info|pull`) and the engine benchmark (`tts bench`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from ..cli_options import MODELS
from ..settings import SettingsError, parse_int_list
from .common import USER_ERRORS, app, console, fail


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
    from ..bench import run_bench
    from ..registry import default_model
    from ..render import bench_row, bench_table
    try:
        if kv not in ("auto", "unified", "split", "both"):
            raise SettingsError(f"--kv: expected auto, unified, split or both, got {kv!r}")
        ns = parse_int_list(n, "--n")
        if max(ns) > 256:
            raise SettingsError("--n: at most 256 parallel sequences (llama.cpp's limit)")
        model_path = model or default_model()
        table = bench_table(model_path, tokens)
        from contextlib import nullcontext
        with console.status("benchmarking...", spinner="dots") if not as_json else nullcontext():
            rows = run_bench(str(model_path), ns, tokens, naive=naive, naive_max_n=naive_max_n, kv=kv,
                             n_gpu_layers=gpu_layers, n_threads=threads, raw=raw,
                             on_row=lambda row: bench_row(table, row))
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        from ..engine import gpu_offload_supported
        print(json.dumps({"model": str(model_path), "tokens": tokens, "gpu_offload": gpu_offload_supported(),
                          "threads": threads or os.cpu_count(), "rows": [r.as_dict() for r in rows]}))
    else:
        console.print(table)



models_app = typer.Typer(help="The model registry: list, info, pull.", no_args_is_help=True)
app.add_typer(models_app, name="models")
O_MODELS_FILE = MODELS["models_file"][1]


@models_app.command("list")
def models_list(models_file: Optional[Path] = O_MODELS_FILE):
    """Known models, whether each download was checked, and whether it is on this machine.

    Example: tts models list
    """
    from rich.table import Table

    from ..registry import download_checked, load_registry, local_path
    try:
        reg = load_registry(models_file)
    except USER_ERRORS as e:
        fail(str(e))
    table = Table(title="models")
    for col in ("name", "role", "params", "format", "download", "local"):
        table.add_column(col, no_wrap=col == "name")  # names are what users copy
    for e in reg.values():
        fmt = (e.get("prm") or {}).get("format", "chat template")
        table.add_row(e["name"], e.get("role", "?"), f"{float(e.get('params', 0)) / 1e9:.2f}B", fmt,
                      download_checked(e), "yes" if local_path(e) else "-")
    console.print(table)
    console.print("download: seen = the GGUF file or repo was read on its model page; unchecked = not "
                  "confirmed (`tts models info NAME` says what was checked)", highlight=False)


@models_app.command("info")
def models_info(name: str, models_file: Optional[Path] = O_MODELS_FILE):
    """Everything the registry says about one model, and the held-out check of each profile
    `tts calibrate` saved for it.

    Example: tts models info qwen2.5-1.5b-instruct
    """
    import yaml

    from ..registry import entry_named, load_registry, local_path
    try:
        entry = entry_named(name, load_registry(models_file))
    except USER_ERRORS as e:
        fail(str(e))
    path = local_path(entry)
    console.print(yaml.safe_dump({**entry, "local_path": str(path) if path else None}, allow_unicode=True,
                                 sort_keys=False), highlight=False)
    from ..profile import Profile, ProfileError, saved_profiles_for
    from ..render import heldout_lines
    for saved in saved_profiles_for(entry):  # what calibrate measured for it, and whether it held
        try:
            lines = heldout_lines(Profile.load(saved))
        except ProfileError as e:
            lines = [f"unreadable: {e}"]
        console.print("\n".join([f"profile {saved}:"] + lines), highlight=False, soft_wrap=True)


@models_app.command("pull")
def models_pull(name: str, models_file: Optional[Path] = O_MODELS_FILE):
    """Download a model's GGUF from the Hugging Face hub (resumable, into the hub cache).

    Example: tts models pull qwen2.5-0.5b-instruct
    """
    from ..registry import entry_named, load_registry, pull
    try:
        path = pull(entry_named(name, load_registry(models_file)))
    except USER_ERRORS as e:
        fail(str(e))
    console.print(f"{name}: {path}")


