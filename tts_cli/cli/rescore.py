"""`tts rescore`: choose again, with another verifier, without generating again."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli_options import BATCH, MODELS, pick, with_options
from ..settings import build_batch, build_run
from .common import USER_ERRORS, app, console, fail, say


@app.command()
@with_options(MODELS, pick(BATCH, "restart", "wait"))
def rescore(
    results: Path = typer.Argument(..., help="A results file of a majority or best-of-n run (tts grade, compare)."),
    out: Path = typer.Option(..., "--out", "-o", help="The rescored results file (resumable)."),
    selection: str = typer.Option("vote", "--selection", help="vote (PRM-Vote) or max (PRM-Max)."),
    aggregation: str = typer.Option("last", "--aggregation", help="Step scores to a path score: last, min, avg, prod."),
    repair: bool = typer.Option(False, "--repair", help="With --prm arithmetic: a candidate whose only false fact is "
                                "its last sum, whose stated result is its answer, answers the true result (as a "
                                "live run with --repair does)."),
    **opts,
):
    """Choose the answers of a finished majority or Best-of-N run again with another verifier
    (--prm), selection or aggregation, from its recorded candidates: only the verifier's compute.

    Examples:
      tts grade arith-test --out runs/maj16.jsonl --strategy majority --n 16 --prompt few-shot --max-steps 6 --max-step-tokens 64 --limit 8
      tts rescore runs/maj16.jsonl --prm arithmetic --out runs/maj16-arith.jsonl
      tts rescore runs/maj16.jsonl --prm arithmetic+confidence --selection max --out runs/maj16-ac.jsonl
      tts rescore runs/maj16.jsonl --prm arithmetic --repair --out runs/maj16-repaired.jsonl
    """
    from ..grade import summarize
    from ..rescore import rescore_file
    from ..render import grade_summary_table
    try:
        settings = build_run(None, opts, strategy="best-of-n", selection=selection, aggregation=aggregation,
                             repair=repair)
        batch = build_batch(opts)
        records = rescore_file(results, out, settings.models, selection=selection, aggregation=aggregation,
                               repair=repair, restart=batch.restart, wait=batch.wait, say=say)
    except USER_ERRORS as e:
        fail(str(e))
    grade_summary_table(console, summarize(records), out)
