"""What the batch commands print: progress while they run, tables at the end (Rich). The search
tree and the result panel of `tts solve` are in live.py."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def fmt(value, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


class GradeProgress:
    """One bar per run: problems done, accuracy so far, what is in flight (per Ray worker)."""

    def __init__(self, console: Console, show: bool = True):
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("acc {task.fields[acc]}"), TextColumn("in flight {task.fields[flight]}"),
                            TimeRemainingColumn(), console=console, disable=not show)
        self.tasks: dict = {}
        self.counts: dict = {}

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def add(self, key: str, label: str, total: int, records: list[dict]) -> None:
        graded = [r for r in records if r.get("correct") is not None and not r.get("error")]
        self.counts[key] = [len(graded), sum(bool(r["correct"]) for r in graded)]
        self.tasks[key] = self.bar.add_task(label, total=total, acc=self._acc(key), flight=0)

    def record(self, key: str, rec: dict, flight) -> None:
        if rec.get("correct") is not None and not rec.get("error"):
            self.counts[key][0] += 1
            self.counts[key][1] += bool(rec["correct"])
        self.bar.update(self.tasks[key], advance=1, acc=self._acc(key), flight=flight)

    def skip(self, key: str, n: int) -> None:
        self.bar.update(self.tasks[key], advance=n)

    def _acc(self, key: str) -> str:
        done, correct = self.counts[key]
        return f"{correct / done:.1%}" if done else "-"


def grade_summary_table(console: Console, s: dict, out: Path) -> None:
    """Accuracy overall and by level and subject, then compute, from grade.summarize."""
    table = Table(title=f"results: {out}")
    table.add_column("")
    table.add_column("problems", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_row("all", str(s["graded"]), fmt(s["accuracy"], "{:.1%}"))
    for key in ("by_level", "by_subject"):
        for name, v in s.get(key, {}).items():
            table.add_row(f"{key[3:]} {name}", str(v["n"]), f"{v['accuracy']:.1%}")
    console.print(table)
    console.print(f"errors: {s['errors']}   tokens: {s['tokens']}   FLOPs: {s['flops']:.3g}   "
                  f"engine time: {s['seconds']:.1f} s", highlight=False)
    if s["candidates"]:
        console.print(f"candidates without an answer: {s['no_answer']} of {s['candidates']}", highlight=False)


def grade_summary(console: Console, summary, out: Path) -> None:
    from .grade import summarize
    s = summarize(summary.records)
    grade_summary_table(console, s, out)
    console.print(f"(skipped, already done: {summary.skipped})", highlight=False)
    for count, what in ((summary.foreign, "belong to no problem of this data set (kept, not counted)"),
                        (summary.duplicates, "were superseded by a later record of the same problem"),
                        (summary.regraded, "were graded again: the data set's reference answer changed")):
        if count:
            console.print(f"{count} records in {out} {what}", highlight=False)


def compare_table(console: Console, data: Path, rows: list[dict], table5: dict | None, out: Path) -> None:
    table = Table(title=f"accuracy vs compute: {data.name}")
    for col in ("strategy", "N", "accuracy", "pass@N", "headroom", "FLOPs / problem", "engine s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["strategy"] + ("*" if r.get("estimated_from") else ""), str(r["n"]),
                      fmt(r["accuracy"], "{:.1%}"), fmt(r["pass_at_n"], "{:.1%}"),
                      fmt(r.get("headroom"), "{:.0%}"), fmt(r["flops_per_problem"] or None, "{:.3g}"),
                      f"{r['seconds']:.1f}")
    console.print(table)
    pool_run = next((r["estimated_from"] for r in rows if r.get("estimated_from")), None)
    if pool_run:
        from .compare import ESTIMATED_NOTE
        console.print(f"*: {ESTIMATED_NOTE} (N_max = {pool_run})", highlight=False)
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


def calibration_tables(console: Console, profile, info: dict, out: Path, saved: Path) -> None:
    """What `tts calibrate` prints when it is done: the profile, then where it went."""
    profile_report(console, profile, title=f"compute-optimal settings: {Path(info['policy']).name}, "
                                           f"verifier {info['verifier']}")
    meta = profile.meta
    console.print(f"wrote {out} (and {saved}); {meta.get('seconds')} s", highlight=False)
    shared = meta.get("shared_draws")
    if shared and shared["hits"] + shared["misses"]:
        console.print(f"shared draws: {shared['misses']} steps generated, {shared['hits']} replayed to other "
                      f"settings' runs ({shared['tokens_replayed']} tokens not generated again)", highlight=False)


def profile_report(console: Console, profile, title: str | None = None) -> None:
    """A profile's choices with their intervals and rules, its difficulty models and its
    held-out check (`tts calibrate` at the end, and `tts calibrate --show PROFILE`)."""
    table = Table(title=title or f"profile: {Path(str(profile.policy.get('file', '?'))).name}, "
                                 f"verifier {profile.prm or 'none'}")
    for col in ("bin", "N", "setting", "accuracy (90%)", "pass@N", "FLOPs", "problems", "rule"):
        table.add_column(col, justify="left" if col in ("setting", "rule") else "right")
    for c in profile.choices:
        accuracy = f"{c.accuracy:.0%}" + (f" ({c.interval[0]:.0%}-{c.interval[1]:.0%})" if c.interval else "")
        table.add_row(c.bin, str(c.budget), c.describe(), accuracy, fmt(c.pass_at_n, "{:.0%}"), f"{c.flops:.2g}",
                      str(c.problems), short_rule(c.rule, c.margin if c.difference is None else None))
    console.print(table)
    meta = profile.meta
    if "calibration_problems" in meta:
        console.print(f"decided on {meta['calibration_problems']} problems (per bin: {meta['problems_per_bin']}); "
                      f"rule: a setting replaces the default (majority at the budget, or CoT when as good) only "
                      f"when it beats it on the same problems by more than the noise; a bin with fewer than "
                      f"{meta.get('min_bin_problems')} problems is decided with its neighbour or on all",
                      highlight=False)
    for line in difficulty_model_lines(profile) + heldout_lines(profile):
        console.print(line, highlight=False)


def short_rule(rule: str | None, margin: float | None = None) -> str:
    """A choice's rule in a table cell; the full one is in the profile. margin (given for a kept
    default): what a win would have needed on those problems, the noise."""
    if rule is None:
        return "best measured (v1)"
    if rule.startswith("beats default by "):
        return "beats default by " + rule.split()[3]
    short = rule.replace("bin too small: merged with ", "small bin, with ").replace(
        "bin too small: all-problem choice", "small bin, all problems")
    return short + (f" (a win needed +{margin:.0%})" if margin is not None else "")


def difficulty_model_lines(profile) -> list[str]:
    out = []
    for entry in profile.difficulty_models:
        model = entry.get("model")
        if not model:
            out.append(f"difficulty from a probe of {entry['probe_paths']} paths: answer agreement "
                       f"(no model: {entry.get('reason')})")
            continue
        base = model["baselines"]
        out.append(f"difficulty from a probe of {entry['probe_paths']} paths: model on {', '.join(model['features'])}; "
                   f"bin accuracy {fmt(model['cv_accuracy'], '{:.0%}')} (cross-validated on {model['problems']}) "
                   f"against {fmt(base['agreement_thresholds'], '{:.0%}')} for agreement thresholds, "
                   f"{base['most_common_bin']:.0%} for always the most common bin")
    return out


def heldout_lines(profile) -> list[str]:
    """The held-out check in plain text (also `tts models info`)."""
    check = profile.heldout
    if not check:
        return ["held-out check: none (a profile made before held-out checks; calibrate again to get one)"]
    if check.get("skipped"):
        return [f"held-out check: none ({check['skipped']})"]
    out = [f"held-out check: {check['problems']} problems the profile was not chosen on "
           f"(accuracy, {check['level']:.0%} interval over problems):"]
    for row in check["budgets"]:
        p, f, m = row["profile"], row["best_fixed"], row["majority"]
        out.append(f"  N={row['budget']}: profile predicted {_iv(p['predicted'])}, realized {_iv(p['realized'])}"
                   f" ({'agrees' if row['agrees'] else 'does NOT agree'}); best fixed {f['setting']} "
                   f"{_iv(f['realized'])}; majority {_iv(m['realized'])}; profile - majority "
                   f"{_diff(row['profile_minus_majority'])}; bins by {row['difficulty_from']}, "
                   f"{row['bin_accuracy']:.0%} right")
    return out


def _iv(d: dict) -> str:
    return f"{d['mean']:.1%} [{d['lo']:.1%}, {d['hi']:.1%}]"


def _diff(d: dict) -> str:
    return f"{d['mean']:+.1%} [{d['lo']:+.1%}, {d['hi']:+.1%}]"


def verifier_table(title: str, part: dict) -> Table:
    """The head's and the baselines' figures on one set of steps (train-prm's report)."""
    table = Table(title=title)
    for col in ("verifier", "AUC", "acc", "AUC/problem", "rank", "top", "Max", "Vote", "majority", "pass@N"):
        table.add_column(col, justify="right")
    for name, ev in [("trained head", part["head"])] + list(part["baselines"].items()):
        sel = ev["selection"]
        rank = sel.get("mean_rank_of_best_right")
        table.add_row(name, fmt(ev["step_auc"], "{:.3f}"), fmt(ev["step_accuracy"], "{:.1%}"),
                      fmt(ev["within_problem_auc"], "{:.3f}"),
                      "-" if rank is None else f"{rank:.2f} ({sel['random_mean_rank']:.2f})",
                      fmt(sel.get("right_on_top"), "{:.0%}"), f"{sel['max']:.1%}", f"{sel['vote']:.1%}",
                      f"{sel['majority']:.1%}", f"{sel['pass_at_n']:.1%}")
    return table


def training_report(console: Console, report: dict) -> None:
    title = (f"held-out problems: {report['problems']['heldout']} ({report['steps']['heldout']} steps); "
             f"trained on {report['problems']['train']}")
    console.print(verifier_table(title, report))
    for name, ev in (report.get("eval") or {}).items():
        console.print(verifier_table(f"{name}: {ev.get('problems')} problems of a set never trained on", ev))
    console.print("AUC, acc: steps against their labels; AUC/problem: each problem's candidates ranked by their "
                  "last step; rank: where the best right sample ranks by the score on contested problems (some "
                  "samples right, some wrong), a random order's expectation in parentheses; top: share of them "
                  "with a right sample on top; Max, Vote, majority, pass@N: accuracy choosing among the samples "
                  "by the score (PRM-Max, PRM-Vote), by votes, and by an oracle", highlight=False)
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


class TrainProgress:
    """A Rich progress bar per stage of `tts train-prm`, with ETA."""

    def __init__(self, console: Console):
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=console)
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def stage(self, name: str, total: int, done: int = 0) -> None:
        if self.task is not None:
            self.bar.update(self.task, visible=self.bar.tasks[self.task].completed > 0)
        self.task = self.bar.add_task(name, total=total, completed=done, note="")

    def advance(self, n: int = 1, note: str = "") -> None:
        self.bar.update(self.task, advance=n, note=note)

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


def bench_table(model: Path, tokens: int) -> Table:
    table = Table(title=f"tts bench: {model.name}, {tokens} tokens per sequence")
    for col in ("N", "KV", "engine tok/s", "naive tok/s", "speedup", "raw decode tok/s",
                "engine/raw", "prefill engine", "prefill naive", "peak RSS MB"):
        table.add_column(col, justify="right")
    return table


def bench_row(table: Table, row) -> None:
    table.add_row(str(row.n), row.kv, f"{row.engine_tok_s:.1f}", fmt(row.naive_tok_s), fmt(row.speedup, "{:.2f}x"),
                  fmt(row.raw_decode_tok_s), fmt(row.engine_vs_raw, "{:.2f}"), str(row.engine_prefill_tokens),
                  fmt(row.naive_prefill_tokens, "{}"), f"{row.engine_peak_rss_mb:.0f}")
