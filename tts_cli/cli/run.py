"""The commands that run searches: solve, grade, compare, calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli_options import BATCH, CONFIG, MODELS, PATHS, SEARCH, STRATEGY, pick, with_options, without
from ..settings import STRATEGY_NAMES, SettingsError, build_batch, build_run, parse_float_list, parse_int_list, parse_names
from .common import USER_ERRORS, app, console, err_console, fail, interrupted, say


@app.command()
@with_options(CONFIG, STRATEGY, SEARCH, MODELS)
def solve(
    problem: Optional[str] = typer.Argument(None, help="The problem text; or use --file."),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="Read the problem from a file ('-' for stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
    no_live: bool = typer.Option(False, "--no-live", help="No live tree (also off when stdout is not a terminal)."),
    tree: bool = typer.Option(False, "--tree", help="Print the whole search tree at the end (--json always has it)."),
    server: Optional[str] = typer.Option(None, "--server", help="Solve on a `tts serve` server at this URL (its models; the live tree drawn from its stream)."),
    **opts,
):
    """Solve one problem with a test-time search, showing the search tree as it grows.

    Examples:
      tts solve "What is 15 + 27?"
      tts solve --strategy beam --n 16 --prm confidence "Find x if 2x + 3 = 11."
      echo "Find x if 2x + 3 = 11." | tts solve --file - --config recipes/beam-n16.yaml --json
      tts solve --strategy dvts --n 16 --tree "What is 7 * 8?"
      tts solve --server http://127.0.0.1:8000 --strategy majority --n 8 "What is 7 * 8?"
    """
    from ..live import LiveView, render_tree, result_panel
    from ..serve.client import remote_solver
    from ..settings import DRAW_SEED, draw_seed, read_problem_text, with_seed
    from ..solver import solve_text
    try:
        settings = build_run(opts["config"], opts)
        solve_with = solve_text if server is None else remote_solver(server, opts)  # the same face
        if settings.search.seed == DRAW_SEED:
            settings = with_seed(settings, draw_seed())
            if not as_json:
                say(f"seed: drew {settings.search.seed} (--seed {settings.search.seed} repeats this search)")
        text = read_problem_text(problem, file)
        title = f"{settings.strategy} N={settings.search.n}"
        if console.is_terminal and not no_live and not as_json:
            from rich.live import Live  # transient: the view cut to the terminal goes; --tree prints it all
            with Live(console=console, refresh_per_second=8, transient=True) as live:
                result = solve_with(settings, text, LiveView(live, title))
        else:
            result = solve_with(settings, text)
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        from ..results import json_line
        print(json_line(result.as_dict()), end="")
        return
    if tree:
        console.print(render_tree(result.tree, title, width=console.size.width))
    console.print(result_panel(result))


@app.command()
@with_options(CONFIG, STRATEGY, SEARCH, MODELS, BATCH)
def grade(
    data: Path = typer.Argument(..., help="A data set's name (`tts data list`: gsm8k, arith-test, math500, ...) or a JSONL file (MATH-500, AIME24 or GSM8K fields, or --problem-key/--answer-key); a file that exists wins."),
    out: Path = typer.Option(..., "--out", "-o", help="Results JSONL; rerunning with the same file resumes."),
    **opts,
):
    """Grade a problem set (a name from `tts data list`, or a JSONL file); one result line per
    problem, appended as each finishes.

    Examples:
      tts grade arith-test --out runs/cot.jsonl --strategy cot --prompt few-shot --limit 20
      tts grade gsm8k --out runs/beam16.jsonl --config recipes/beam-n16.yaml --concurrency 8 --limit 2
      tts data pull math500 && tts grade math500 --out runs/beam16.jsonl --strategy beam --n 16 --ray 10.0.0.1:6379
    """
    from ..batch import Run
    from ..render import grade_summary
    try:
        settings = build_run(opts["config"], opts)
        summary = run_batch(data, {"": Run(out, settings)}, opts)[""]
    except KeyboardInterrupt as e:  # before the problems (--ray workers starting) or after them (closing)
        interrupted(f"the finished records are in {out}", e)
    except USER_ERRORS as e:
        fail(str(e))
    grade_summary(console, summary, out)
    if summary.interrupted:
        interrupted(f"{summary.written} new records this run, {len(summary.records)} of this data set's problems "
                    f"in all, are in {out}", summary.interrupted)


def run_batch(data: Path, runs: dict, opts: dict) -> dict:
    """batch.grade_data with the shared flags, a progress bar, and status lines on stderr."""
    from ..batch import grade_data
    from ..render import GradeProgress
    return grade_data(data, runs, build_batch(opts), progress=GradeProgress(err_console), say=say,
                     inputs=tuple(p for p in [opts.get("config")] if p))


@app.command()
@with_options(CONFIG, MODELS, PATHS, pick(SEARCH, "top_p", "top_k", "beam_width", "aggregation", "selection",
                                              "lookahead", "profile", "probe"), BATCH)
def compare(
    data: Path = typer.Argument(..., help="A data set's name (`tts data list`) or a JSONL file."),
    strategies: str = typer.Option("cot,majority,best-of-n,beam,dvts", "--strategies", help="Comma-separated strategies."),
    budgets: str = typer.Option("4,16,64", "--budgets", help="Comma-separated budgets N."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for results files, summary.json and the plot."),
    **opts,
):
    """Accuracy against compute for several strategies and budgets; writes a plot.

    Every (strategy, budget) runs over the same problems in one stream of concurrent searches:
    a problem's prompt is prefilled once for all of them. Majority and Best-of-N run once, at
    the largest budget: their accuracy at N = 1, 2, 4, ... is estimated from random subsets of
    its paths (dashed in the plot; FLOPs scaled as N / N_max).

    Example:
      tts compare arith-test --limit 20 --strategies cot,majority,beam --budgets 4,8 --prm confidence --prompt few-shot --out runs/cmp
    """
    from ..compare import plan_runs, prepare_folder, write_summary
    from ..render import compare_table
    try:
        names = parse_names(strategies, "--strategies", STRATEGY_NAMES, "strategy")
        ns = parse_int_list(budgets, "--budgets")
        build_batch(opts)
        base = build_run(opts["config"], opts, strategy="majority")
        prepare_folder(out)
        runs, pooled = plan_runs(names, ns, out, base, say)
        summaries = run_batch(data, runs, opts)
        how = next((s.interrupted for s in summaries.values() if s.interrupted), None)
        if how:
            interrupted(f"finished problems are in {out}", how)
        rows, table5 = write_summary(data, runs, summaries, out, pooled, ns)
    except KeyboardInterrupt as e:  # before the problems (--ray workers starting) or after them (closing)
        interrupted(f"finished problems are in {out}", e)
    except USER_ERRORS as e:
        fail(str(e))
    compare_table(console, data, rows, table5, out)


@app.command()
@with_options(CONFIG, MODELS, PATHS, pick(SEARCH, "top_p", "top_k"), without(BATCH, "skip_bad"))
def calibrate(
    data: Optional[Path] = typer.Argument(None, help="A data set's name (`tts data list`) or a JSONL file, with reference answers."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Profile YAML to write."),
    budgets: str = typer.Option("4,16,64", "--budgets", help="Comma-separated budgets N."),
    strategies: str = typer.Option("cot,majority,majority-adaptive,best-of-n,best-of-n-adaptive,beam,dvts", "--strategies",
                                   help="Strategies to measure (also particle-filter: its own runs). Majority, Best-of-N and their early-stopping variants come from the pools at no extra cost."),
    beam_widths: str = typer.Option("2,4", "--beam-widths", help="Beam widths M to try for beam and dvts."),
    aggregations: str = typer.Option("last,min", "--aggregations", help="Step-score aggregations to try."),
    stop_thresholds: str = typer.Option("0.7,0.95", "--stop-thresholds", help="Stop thresholds to try for the early-stopping strategies (majority-adaptive, best-of-n-adaptive)."),
    temperatures: Optional[str] = typer.Option(None, "--temperatures", help="Sampling temperatures to try for every sampled setting, e.g. 0.3,0.5,0.7 (default: --temperature alone). Small policies often do best well below 0.7."),
    holdout: float = typer.Option(0.3, "--holdout", min=0.0, max=0.9, help="Share of the problems (by a hash of their id) left out of the choice, to check the profile on (0: none)."),
    min_bin_problems: int = typer.Option(20, "--min-bin-problems", min=1, help="A difficulty bin with fewer calibration problems is decided together with its neighbour (or on all problems)."),
    easy: float = typer.Option(0.5, "--easy", help="pass@1 at or above this is easy."),
    medium: float = typer.Option(0.1, "--medium", help="pass@1 at or above this (and below --easy) is medium."),
    per_setting: bool = typer.Option(False, "--per-setting", help="Run every setting on its own, plus a difficulty run of --samples paths (the calibration before sample pools; slower, for comparison)."),
    samples: int = typer.Option(8, "--samples", min=1, help="With --per-setting: paths of the difficulty run."),
    shared_draws: bool = typer.Option(True, "--shared-draws/--no-shared-draws", help="Runs of different settings share the steps they would both sample (each run is still its own sample; the union is generated once). Off with --per-setting."),
    show: Optional[Path] = typer.Option(None, "--show", help="Print a profile (its choices, rules, intervals and held-out check) and exit."),
    **opts,
):
    """Measure the compute-optimal setting per difficulty bin and budget; write a profile.

    Majority and Best-of-N are estimated from one pool of max(budgets) scored paths per problem
    and temperature (the early-stopping variants too); DVTS runs at the largest budget and its subtrees
    give the smaller ones; CoT runs once; beam search runs per setting; all resumably, in OUT's
    folder (OUT.runs/). The runs share their draws: a step that several of them would sample
    (the i-th first step, its j-th continuation, ...) is generated once. A choice replaces the default (majority, or CoT when as good) only when
    it beats it by more than the noise; the profile is checked on --holdout of the problems.
    `--strategy auto` then uses the profile.

    Examples:
      tts calibrate arith-calib --budgets 4,8 --prm confidence --prompt few-shot --max-steps 6 --max-step-tokens 64 --out runs/smollm2.yaml
      tts calibrate --show runs/smollm2.yaml
    """
    from ..calibrate import calibrate_command
    from ..calibrate_plan import STRATEGIES as CALIBRATE_STRATEGIES
    from ..render import calibration_tables, profile_report
    try:
        if show is not None:
            from ..profile import Profile
            return profile_report(console, Profile.load(show))
        with console.status("calibrating...") as status:
            profile, info, saved = calibrate_command(
                data, out, opts, budgets=parse_int_list(budgets, "--budgets"),
                strategies=parse_names(strategies, "--strategies", CALIBRATE_STRATEGIES, "strategy"),
                stop_thresholds=parse_float_list(stop_thresholds, "--stop-thresholds"),
                beam_widths=parse_int_list(beam_widths, "--beam-widths"), aggregations=parse_names(aggregations, "--aggregations", ("last", "min", "avg", "prod"), "aggregation"),
                temperatures=parse_float_list(temperatures, "--temperatures") if temperatures else [None],
                easy=easy, medium=medium, holdout=holdout, min_problems=min_bin_problems, per_setting=per_setting,
                shared_draws=shared_draws, samples=samples, say=say, on_record=lambda key, rec, flight: status.update(
                    f"calibrating: {flight} in flight (last: {key}, {rec.get('id')})"))
    except KeyboardInterrupt as e:
        interrupted(f"finished runs are kept in {Path(str(out)).parent / (Path(str(out)).name + '.runs')}", e)
    except USER_ERRORS as e:
        fail(str(e))
    calibration_tables(console, profile, info, out, saved)
