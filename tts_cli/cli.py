"""The `tts` command. Commands parse options, call the library, and render; nothing else.

The flags shared by several commands are declared once in cli_options.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .cli_options import BATCH, CONFIG, MODELS, PATHS, SEARCH, STRATEGY, normalize_argv, pick, with_options, without
from .cluster import ClusterError
from .datasets import DataError
from .engine import EngineError
from .engine.chat import ChatTemplateError
from .profile import ProfileError
from .registry import RegistryError
from .results import ResultsError
from .search import ConfigError
from .settings import (STRATEGY_NAMES, SettingsError, build_batch, build_run, parse_float_list, parse_int_list,
                       parse_names)
from .train_prm import TrainingError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Test-time scaling for small local GGUF models (llama.cpp).")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Test-time scaling for small local GGUF models (llama.cpp)."""


# Errors that are the user's to fix: one line on stderr, exit code 2, no traceback. Anything
# else (engine.EngineBug among them) is a bug and keeps its traceback.
USER_ERRORS = (SettingsError, EngineError, RegistryError, DataError, ConfigError, ResultsError, ProfileError,
               TrainingError, ClusterError, ChatTemplateError)


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape  # messages quote user text, file names and "[extra]"s
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """A status line on stderr (stdout stays for results)."""
    err_console.print(text, highlight=False, markup=False)


def interrupted(where: str, how: str | BaseException = "interrupted") -> None:
    """Ctrl-C (exit 130) or SIGTERM ("terminated", exit 143): finished work is kept. `how`: the
    word, or the KeyboardInterrupt caught (engine.Terminated for SIGTERM)."""
    if isinstance(how, BaseException):
        from .engine import Terminated
        how = "terminated" if isinstance(how, Terminated) else "interrupted"
    err_console.print(f"{how}: {where}; rerun to resume", highlight=False)
    raise typer.Exit(143 if how == "terminated" else 130)


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
    from .registry import default_model
    from .render import bench_row, bench_table
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
        from .engine import gpu_offload_supported
        print(json.dumps({"model": str(model_path), "tokens": tokens, "gpu_offload": gpu_offload_supported(),
                          "threads": threads or os.cpu_count(), "rows": [r.as_dict() for r in rows]}))
    else:
        console.print(table)


@app.command()
@with_options(CONFIG, STRATEGY, SEARCH, MODELS)
def solve(
    problem: Optional[str] = typer.Argument(None, help="The problem text; or use --file."),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="Read the problem from a file ('-' for stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
    no_live: bool = typer.Option(False, "--no-live", help="No live tree (also off when stdout is not a terminal)."),
    tree: bool = typer.Option(False, "--tree", help="Print the whole search tree at the end (--json always has it)."),
    **opts,
):
    """Solve one problem with a test-time search, showing the search tree as it grows.

    Examples:
      tts solve "What is 15 + 27?"
      tts solve --strategy beam --n 16 --prm confidence "Find x if 2x + 3 = 11."
      tts solve --file problem.txt --config recipes/beam-n16.yaml --json
      tts solve --strategy dvts --n 16 --tree "What is 7 * 8?"
    """
    from .live import LiveView, render_tree, result_panel
    from .settings import DRAW_SEED, draw_seed, read_problem_text, with_seed
    from .solver import solve_text
    try:
        settings = build_run(opts["config"], opts)
        if settings.search.seed == DRAW_SEED:
            settings = with_seed(settings, draw_seed())
            if not as_json:
                say(f"seed: drew {settings.search.seed} (--seed {settings.search.seed} repeats this search)")
        text = read_problem_text(problem, file)
        title = f"{settings.strategy} N={settings.search.n}"
        if console.is_terminal and not no_live and not as_json:
            from rich.live import Live  # transient: the view cut to the terminal goes; --tree prints it all
            with Live(console=console, refresh_per_second=8, transient=True) as live:
                result = solve_text(settings, text, LiveView(live, title))
        else:
            result = solve_text(settings, text)
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        from .results import json_line
        print(json_line(result.as_dict()), end="")
        return
    if tree:
        console.print(render_tree(result.tree, title, width=console.size.width))
    console.print(result_panel(result))


@app.command()
@with_options(CONFIG, STRATEGY, SEARCH, MODELS, BATCH)
def grade(
    data: Path = typer.Argument(..., help="JSONL problem set (MATH-500, AIME24, GSM8K, or --problem-key/--answer-key)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results JSONL; rerunning with the same file resumes."),
    **opts,
):
    """Grade a JSONL problem set; one result line per problem, appended as each finishes.

    Examples:
      tts grade benchmarks/data/arith-test.jsonl --out runs/cot.jsonl --strategy cot --prompt few-shot --limit 20
      tts grade math500.jsonl --out beam16.jsonl --config recipes/beam-n16.yaml --concurrency 8
      tts grade math500.jsonl --out beam16.jsonl --strategy beam --n 16 --ray 10.0.0.1:6379
    """
    from .batch import Run
    from .render import grade_summary
    try:
        settings = build_run(opts["config"], opts)
        summary = run_batch(data, {"": Run(out, settings)}, opts)[""]
    except USER_ERRORS as e:
        fail(str(e))
    grade_summary(console, summary, out)
    if summary.interrupted:
        interrupted(f"{summary.written} new records this run, {len(summary.records)} of this data set's problems "
                    f"in all, are in {out}", summary.interrupted)


def run_batch(data: Path, runs: dict, opts: dict) -> dict:
    """batch.run_grade with the shared flags, a progress bar, and status lines on stderr."""
    from .batch import run_grade
    from .render import GradeProgress
    return run_grade(data, runs, build_batch(opts), progress=GradeProgress(err_console), say=say,
                     inputs=tuple(p for p in [opts.get("config")] if p))


@app.command()
@with_options(CONFIG, MODELS, PATHS, pick(SEARCH, "top_p", "top_k", "beam_width", "aggregation", "selection",
                                              "lookahead", "profile", "probe"), BATCH)
def compare(
    data: Path = typer.Argument(..., help="JSONL problem set."),
    strategies: str = typer.Option("cot,majority,best-of-n,beam,dvts", "--strategies", help="Comma-separated strategies."),
    budgets: str = typer.Option("4,16,64", "--budgets", help="Comma-separated budgets N."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for results files, summary.json and the plot."),
    **opts,
):
    """Accuracy against compute for several strategies and budgets; writes a plot.

    Every (strategy, budget) runs over the same problems in one stream of concurrent searches:
    a problem's prompt is prefilled once for all of them.

    Example:
      tts compare benchmarks/data/arith-test.jsonl --limit 20 --strategies cot,majority,beam --budgets 4,8 --prm confidence --prompt few-shot --out runs/cmp
    """
    from .compare import plan_runs, prepare_folder, write_summary
    from .render import compare_table
    try:
        names = parse_names(strategies, "--strategies", STRATEGY_NAMES, "strategy")
        ns = parse_int_list(budgets, "--budgets")
        build_batch(opts)
        base = build_run(opts["config"], opts, strategy="majority")
        prepare_folder(out)
        runs = plan_runs(names, ns, out, base, say)
        summaries = run_batch(data, runs, opts)
        how = next((s.interrupted for s in summaries.values() if s.interrupted), None)
        if how:
            interrupted(f"finished problems are in {out}", how)
        rows, table5 = write_summary(data, runs, summaries, out)
    except USER_ERRORS as e:
        fail(str(e))
    compare_table(console, data, rows, table5, out)


@app.command()
@with_options(CONFIG, MODELS, PATHS, pick(SEARCH, "top_p", "top_k"), without(BATCH, "skip_bad"))
def calibrate(
    data: Path = typer.Argument(..., help="JSONL problem set with reference answers."),
    out: Path = typer.Option(..., "--out", "-o", help="Profile YAML to write."),
    budgets: str = typer.Option("4,16,64", "--budgets", help="Comma-separated budgets N."),
    samples: int = typer.Option(8, "--samples", min=1, help="Paths sampled per problem to estimate pass@1."),
    beam_widths: str = typer.Option("2,4", "--beam-widths", help="Beam widths M to try for beam and dvts."),
    aggregations: str = typer.Option("last,min", "--aggregations", help="Step-score aggregations to try."),
    temperatures: Optional[str] = typer.Option(None, "--temperatures", help="Sampling temperatures to try for every sampled setting, e.g. 0.3,0.5,0.7 (default: --temperature alone). Small policies often do best well below 0.7."),
    easy: float = typer.Option(0.5, "--easy", help="pass@1 at or above this is easy."),
    medium: float = typer.Option(0.1, "--medium", help="pass@1 at or above this (and below --easy) is medium."),
    **opts,
):
    """Measure the compute-optimal setting per difficulty bin and budget; write a profile.

    Every (strategy, budget, beam width, PRM-Vote/Max, aggregation) is graded on every problem,
    resumably, in OUT's folder (OUT.runs/). `--strategy auto` then uses the profile.

    Example:
      tts calibrate benchmarks/data/arith-calib.jsonl --budgets 4,8 --prm confidence --prompt few-shot --max-steps 6 --max-step-tokens 64 --out runs/smollm2.yaml
    """
    from .batch import read_problem_set
    from .calibrate import calibrate_file
    from .difficulty import Bins
    from .render import calibration_tables
    from .settings import check_writable
    try:
        try:
            bins = Bins(easy=easy, medium=medium)
        except ValueError as e:
            raise SettingsError(str(e))
        settings = build_run(opts["config"], opts, strategy="majority")
        batch = build_batch(opts)
        problem_set = read_problem_set(data, batch)
        check_writable(out)
        with console.status("calibrating...") as status:
            profile, info, saved = calibrate_file(
                problem_set, out, settings, batch, parse_int_list(budgets, "--budgets"), samples=samples,
                beam_widths=parse_int_list(beam_widths, "--beam-widths"),
                aggregations=[a.strip() for a in aggregations.split(",") if a.strip()],
                temperatures=parse_float_list(temperatures, "--temperatures") if temperatures else [None],
                bins=bins, say=say,
                on_record=lambda key, rec, flight: status.update(
                    f"calibrating: {flight} in flight (last: {key}, {rec.get('id')})"))
    except KeyboardInterrupt as e:
        interrupted(f"finished runs are kept in {out.parent / (out.name + '.runs')}", e)
    except USER_ERRORS as e:
        fail(str(e))
    calibration_tables(console, profile, info, out, saved)


@app.command("train-prm")
@with_options(CONFIG, without(MODELS, "prm"), PATHS, pick(BATCH, "problem_key", "answer_key", "limit", "concurrency",
                                                          "restart"))
def train_prm(
    data: Path = typer.Argument(..., help="JSONL problems with reference answers (never the set you will test on)."),
    out: str = typer.Option(..., "--out", "-o", help="Name of the trained PRM: `--prm NAME` then uses it."),
    base: Optional[str] = typer.Option(None, "--base", help="Model whose hidden states the head reads: a models.yaml name or a .gguf path (default: the policy)."),
    samples: int = typer.Option(8, "--samples", min=1, help="Solutions sampled per problem."),
    rollouts: int = typer.Option(4, "--rollouts", min=0, help="Completions from each step's end that label it (Math-Shepherd)."),
    labels: str = typer.Option("mc", "--labels", help="mc (Monte-Carlo rollouts from every step) or outcome (each step labelled by its path's final answer; no rollouts, much cheaper)."),
    holdout: float = typer.Option(0.25, "--holdout", help="Share of problems held out for the report (split by problem, never by step)."),
    baselines: str = typer.Option("confidence", "--baselines", help="Verifiers measured on the same held-out steps: confidence, judge (costs a judge pass)."),
    folder: Optional[Path] = typer.Option(None, "--dir", help="Working folder (rollouts, features, head, report); default ~/.local/share/tts_cli/prms/NAME. Rerunning resumes."),
    **opts,
):
    """Train a process reward head for your policy on your problems; `--prm NAME` then scores with it.

    Samples solutions with the policy (the searches' prompt and steps), labels every step by
    rollouts from its end, reads each step's hidden state from the base model and fits a
    logistic value head on a split of problems. Every stage resumes where it stopped.

    Examples:
      tts train-prm benchmarks/data/arith-calib.jsonl --out smollm2-arith --prompt few-shot --max-steps 6 --max-step-tokens 64
      tts train-prm benchmarks/data/arith-train.jsonl --out my-prm --labels outcome --samples 16 --prompt few-shot
      tts grade benchmarks/data/arith-test.jsonl --out runs/bon.jsonl --strategy best-of-n --n 16 --prm my-prm --prompt few-shot
    """
    from .batch import read_problem_set
    from .render import TrainProgress, training_report
    from .train_prm import TrainSettings, default_prm_dir, split_problems, train_named
    try:
        split_problems([], holdout)  # a bad --holdout fails before any work
        parse_names(labels, "--labels", ("mc", "outcome"), "label kind")
        chosen = parse_names(baselines, "--baselines", ("confidence", "judge"), "verifier")
        if not out or "/" in out or out.startswith("."):
            raise SettingsError(f"--out: a PRM name (letters, digits, dashes), got {out!r}")
        settings = build_run(opts["config"], opts, strategy="majority")
        batch = build_batch(opts)
        problems = read_problem_set(data, batch).problems
        folder = folder or default_prm_dir(out)
        if folder.exists() and not folder.is_dir():
            raise SettingsError(f"{folder}: --dir must be a folder; this is a file")
        run = TrainSettings(samples=samples, rollouts=0 if labels == "outcome" else rollouts, holdout=holdout,
                            seed=settings.search.seed, concurrency=batch.concurrency_value(), baselines=tuple(chosen),
                            n_threads=settings.models.threads, n_gpu_layers=settings.models.gpu_layers,
                            context_per_path=settings.models.context_per_path, restart=batch.restart)
        say(f"training {out} in {folder}: {len(problems)} problems x {samples} samples, "
            f"{'outcome labels' if run.rollouts == 0 else f'{run.rollouts} rollouts per step'}, "
            f"T={settings.search.temperature}")
        with TrainProgress(err_console) as bar:
            report, registry_file = train_named(out, data, problems, folder, settings.search, run,
                                                policy=settings.models.policy, base=base,
                                                models_file=settings.models.models_file, progress=bar, say=say)
    except KeyboardInterrupt as e:
        interrupted("finished rollouts and features are kept", e)
    except USER_ERRORS as e:
        fail(str(e))
    training_report(console, report)
    console.print(f"wrote {folder / 'head.npz'}, {folder / 'report.json'}; registered {out!r} in {registry_file}: "
                  f"use --prm {out}")


models_app = typer.Typer(help="The model registry: list, info, pull.", no_args_is_help=True)
app.add_typer(models_app, name="models")
O_MODELS_FILE = MODELS["models_file"][1]


@models_app.command("list")
def models_list(models_file: Optional[Path] = O_MODELS_FILE):
    """Known models, whether each download was checked, and whether it is on this machine.

    Example: tts models list
    """
    from rich.table import Table

    from .registry import download_checked, load_registry, local_path
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
    """Everything the registry says about one model.

    Example: tts models info qwen2.5-1.5b-instruct
    """
    import yaml

    from .registry import entry_named, load_registry, local_path
    try:
        entry = entry_named(name, load_registry(models_file))
    except USER_ERRORS as e:
        fail(str(e))
    path = local_path(entry)
    console.print(yaml.safe_dump({**entry, "local_path": str(path) if path else None}, allow_unicode=True,
                                 sort_keys=False), highlight=False)


@models_app.command("pull")
def models_pull(name: str, models_file: Optional[Path] = O_MODELS_FILE):
    """Download a model's GGUF from the Hugging Face hub (resumable, into the hub cache).

    Example: tts models pull qwen2.5-0.5b-instruct
    """
    from .registry import entry_named, load_registry, pull
    try:
        path = pull(entry_named(name, load_registry(models_file)))
    except USER_ERRORS as e:
        fail(str(e))
    console.print(f"{name}: {path}")


def main() -> None:
    import sys

    from .engine import handle_termination
    handle_termination()  # SIGTERM stops a run as Ctrl-C does: finished work kept, exit 143
    app(args=normalize_argv(sys.argv[1:]), prog_name="tts")
