"""`tts train-prm`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from ..cli_options import BATCH, CONFIG, MODELS, PATHS, pick, with_options, without
from ..settings import DEFAULT_CONTEXT_PER_PATH, SettingsError, build_batch, build_run, parse_names
from .common import USER_ERRORS, app, console, err_console, fail, interrupted, say


@app.command("train-prm")
@with_options(CONFIG, without(MODELS, "prm"), PATHS, pick(BATCH, "problem_key", "answer_key", "limit", "concurrency",
                                                          "restart"))
def train_prm(
    data: Path = typer.Argument(..., help="A data set's name (`tts data list`) or a JSONL file, with reference answers (never the set you will test on)."),
    out: str = typer.Option(..., "--out", "-o", help="Name of the trained PRM: `--prm NAME` then uses it."),
    base: Optional[str] = typer.Option(None, "--base", help="Model whose hidden states the head reads: a models.yaml name or a .gguf path (default: the policy)."),
    samples: int = typer.Option(8, "--samples", min=1, help="Solutions sampled per problem."),
    rollouts: int = typer.Option(4, "--rollouts", min=0, help="Completions from each step's end that label it (Math-Shepherd)."),
    labels: str = typer.Option("mc", "--labels", help="mc (Monte-Carlo rollouts from every step) or outcome (each step labelled by its path's final answer; no rollouts, much cheaper)."),
    features: str = typer.Option("base", "--features", help="Where a step's hidden state comes from: base (the base model re-reads each step: a value_head PRM, any --base) or policy (kept from the rollouts' own decode, no second read: a policy_head PRM, which scores as the policy samples with no second model; the base is the policy)."),
    holdout: float = typer.Option(0.25, "--holdout", help="Share of problems held out for the report (split by problem, never by step)."),
    baselines: str = typer.Option("confidence,arithmetic", "--baselines", help="Verifiers measured on the same held-out steps: confidence, arithmetic (both free), judge (costs a judge pass)."),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="Comma-separated data sets (names or files) never trained on: sampled too, and the head and the baselines reported on each (do they transfer?)."),
    folder: Optional[Path] = typer.Option(None, "--dir", help="Working folder (rollouts, features, head, report); default ~/.local/share/tts_cli/prms/NAME. Rerunning resumes."),
    **opts,
):
    """Train a process reward head for your policy on your problems; `--prm NAME` then scores with it.

    Samples solutions with the policy (the searches' prompt and steps), labels every step by
    rollouts from its end, reads each step's hidden state from the base model and fits a
    logistic value head on a split of problems. Every stage resumes where it stopped.

    Examples:
      tts train-prm arith-calib --out smollm2-arith --prompt few-shot --max-steps 6 --max-step-tokens 64
      tts train-prm arith-train --out smol-outcome --labels outcome --eval-data stories-test --prompt few-shot --max-steps 6 --max-step-tokens 64 --limit 40
      tts train-prm arith-train --out my-prm --labels outcome --samples 16 --prompt few-shot --max-steps 6 --max-step-tokens 64 --limit 40
      tts grade arith-test --out runs/bon.jsonl --strategy best-of-n --n 16 --prm my-prm --prompt few-shot --max-steps 6 --max-step-tokens 64 --limit 20
    """
    from ..batch import read_problem_set
    from ..render import TrainProgress, training_report
    from ..train_prm import TrainSettings, default_prm_dir, split_problems, train_named
    try:
        split_problems([], holdout)  # a bad --holdout fails before any work
        parse_names(labels, "--labels", ("mc", "outcome"), "label kind")
        chosen = parse_names(baselines, "--baselines", ("confidence", "arithmetic", "judge"), "verifier")
        if not out or "/" in out or out.startswith("."):
            raise SettingsError(f"--out: a PRM name (letters, digits, dashes), got {out!r}")
        settings = build_run(opts["config"], opts, strategy="majority")
        batch = build_batch(opts)
        problem_set = read_problem_set(data, batch)
        problems = problem_set.problems
        whole = replace(batch, limit=None)  # --limit is for the training set; an eval set is read whole
        evals = {Path(name).stem: read_problem_set(name, whole).problems  # a file goes by its name's stem
                 for name in parse_names(eval_data or "", "--eval-data", None, "data set")}
        folder = folder or default_prm_dir(out)
        if folder.exists() and not folder.is_dir():
            raise SettingsError(f"{folder}: --dir must be a folder; this is a file")
        run = TrainSettings(samples=samples, rollouts=0 if labels == "outcome" else rollouts, holdout=holdout,
                            seed=settings.search.seed, concurrency=batch.concurrency_value(), baselines=tuple(chosen),
                            n_threads=settings.models.threads, n_gpu_layers=settings.models.gpu_layers,
                            context_per_path=settings.models.context_per_path or DEFAULT_CONTEXT_PER_PATH,
                            restart=batch.restart, features=features)
        say(f"training {out} in {folder}: {len(problems)} problems x {samples} samples, "
            f"{'outcome labels' if run.rollouts == 0 else f'{run.rollouts} rollouts per step'}, "
            f"T={settings.search.temperature}")
        with TrainProgress(err_console) as bar:
            report, registry_file = train_named(out, problem_set.data, problems, folder, settings.search, run,
                                                policy=settings.models.policy, base=base,
                                                models_file=settings.models.models_file, progress=bar, say=say,
                                                eval_sets=evals)
    except KeyboardInterrupt as e:
        interrupted("finished rollouts and features are kept", e)
    except USER_ERRORS as e:
        fail(str(e))
    training_report(console, report)
    console.print(f"wrote {folder / 'head.npz'}, {folder / 'report.json'}; registered {out!r} in {registry_file}: "
                  f"use --prm {out}")


