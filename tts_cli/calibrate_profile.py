"""From a calibration's graded runs to a profile, with the noise in view.

1. Measure: every setting at every budget gets an accuracy per problem. Majority and Best-of-N
   are estimated from the pool at their temperature (the expected accuracy over random n of the
   pool's N_max paths; FLOPs: n / N_max of the pool run's policy + verifier FLOPs per problem);
   CoT, beam search and DVTS are read from their own runs. Only the problems every setting has
   (no error anywhere) are kept, so that settings compare on the same problems.
2. Difficulty: each problem's pass@1 is the share of right paths in the reference pool (at the
   reference temperature), binned by the profile's thresholds.
3. Split: about `holdout` of the problems (by a hash of their id: pools.heldout_ids) are held
   out; the rest, the calibration problems, decide everything below.
4. Difficulty model: per probe size that auto uses at the budgets, a small model fitted on the
   first k paths of each calibration problem's reference pool (difficulty_model.py) predicts
   the bin from what a probe sees; auto applies it.
5. Choice per (bin, budget) (pools.choose_profile): majority at the budget (at the reference
   temperature), or CoT when it is as good, unless another setting beats it by more than the
   noise on the same problems; too-small bins merge with a neighbour or use every problem.
6. Held-out check: per budget, the profile applied to the held-out problems (each sent to the
   bin its probe predicts, as auto would) - its predicted accuracy against the realized one,
   next to the best fixed setting and majority (pools.evaluate_profile_on_heldout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .calibrate_plan import COT, DIFFICULTY, Setting, pool_key, reference_temperature, subtree_source
from .difficulty import BIN_NAMES, Bins
from .difficulty_model import SKLEARN_HINT, fit_difficulty_model, probe_features
from .grade import pass_at_n
from .pools import (DEFAULT_MIN_PROBLEMS, Pool, bootstrap_interval, choose_profile, evaluate_profile_on_heldout,
                    expected_accuracy, heldout_ids, pools_from_records, record_accuracies)
from .pools.adaptive import adaptive_accuracy
from .pools.subtrees import subtree_accuracy
from .profile import Choice, Profile
from .search.auto import predicted_bin, probe_size

BOOTSTRAP_RESAMPLES = 4000  # per interval; hundreds of them per profile, each over tens of problems


@dataclass(frozen=True)
class Options:
    budgets: list[int]
    bins: Bins = Bins()
    has_verifier: bool = True
    holdout: float = 0.3  # share of the problems held out of the choice, to check it on
    seed: int = 0  # of the held-out split, the bootstraps and the Monte Carlo subsets
    level: float = 0.9  # of every interval
    min_problems: int = DEFAULT_MIN_PROBLEMS  # a bin with fewer is merged (pools.choice)
    base_aggregation: str = "last"  # the probe's (the run's --aggregation)
    base_temperature: float | None = None  # the run's --temperature
    resamples: int = BOOTSTRAP_RESAMPLES


@dataclass
class Measured:
    """One setting at one budget."""

    setting: Setting
    per_problem: dict  # problem id -> accuracy (expected accuracy when estimated from a pool)
    flops: float  # mean per problem
    pass_at_n: float | None
    run: str  # the run it was measured in (its results file in OUT.runs/)
    estimated: bool  # from a pool (True) or its own run


@dataclass
class Measurements:
    table: dict[int, dict[str, Measured]]  # budget -> setting key -> Measured
    ids: list  # the problems every setting has
    dropped: int  # problems left out: a run failed on them
    pools: dict[str, dict] = field(default_factory=dict)  # run key -> problem id -> Pool


def build_profile(plan: dict[str, Setting], records: dict[str, list[dict]],
                  settings_for: Callable[[int], list[Setting]], options: Options, *, policy: dict,
                  prm: str | None) -> Profile:
    """The profile from the plan's graded records (run key -> records)."""
    measured = measure(plan, records, settings_for, options)
    temperatures = [s.temperature for s in settings_for(options.budgets[0]) if s.pooled]
    reference_t = reference_temperature(temperatures, options.base_temperature)
    per_setting = DIFFICULTY in plan
    reference_pools = measured.pools[DIFFICULTY if per_setting else pool_key(max(options.budgets), reference_t)]
    bin_of = {i: options.bins.of(reference_pools[i].pass_at_1) for i in measured.ids}
    calib, held = split(measured.ids, options)

    # the probe's temperature: the reference pool's (the difficulty run samples at --temperature)
    probe_t = options.base_temperature if per_setting or reference_t is None else reference_t
    models = [fit_probe_model(k, reference_pools, bin_of, calib, options, probe_t)
              for k in sorted({probe_size(b) for b in options.budgets})]
    cells = {b: {key: m.per_problem for key, m in measured.table[b].items()} for b in options.budgets}
    majority = {b: Setting("majority", b, temperature=reference_t).key for b in options.budgets}
    decided = choose_profile(cells, bin_of, majority=majority, cot=COT.key, problems=set(calib),
                             min_problems=options.min_problems, level=options.level, seed=options.seed,
                             resamples=options.resamples)
    choices = [choice_of(c, measured.table[c["budget"]][c["setting"]], calib, bin_of, options) for c in decided]
    estimates = estimate_rows(measured, calib, options)
    if held:
        heldout = check_heldout(decided, cells, bin_of, held, majority, reference_pools, models, options)
    else:
        heldout = {"share": options.holdout, "skipped": "--holdout 0" if not options.holdout else
                   f"{len(measured.ids)} problems: too few to hold any out"}
    return Profile(policy=policy, prm=prm, bins=options.bins, choices=choices, frontier=frontier(estimates),
                   estimates=estimates, heldout=heldout, difficulty_models=models,
                   meta={"problems_used": len(measured.ids), "problems_dropped": measured.dropped,
                         "calibration_problems": len(calib), "heldout_problems": len(held),
                         "problems_per_bin": {b: sum(1 for i in calib if bin_of[i] == b) for b in BIN_NAMES},
                         "budgets": list(options.budgets), "reference_temperature": reference_t,
                         "level": options.level, "min_bin_problems": options.min_problems,
                         "settings_measured": list(dict.fromkeys(k for row in measured.table.values() for k in row))})


def split(ids: list, options: Options) -> tuple[list, set]:
    """(calibration problems, held-out problems). Nothing is held out with --holdout 0, or when
    either side would have fewer than 2 problems: then every problem decides and nothing is checked."""
    held = heldout_ids(ids, options.holdout, options.seed) if options.holdout > 0 else set()
    if len(held) < 2 or len(ids) - len(held) < 2:
        held = set()
    return [i for i in ids if i not in held], held


# --- 1. measuring ---------------------------------------------------------------------------------

def measure(plan: dict[str, Setting], records: dict[str, list[dict]], settings_for, options: Options) -> Measurements:
    """Every setting at every budget, on the problems every run has."""
    # sample pools, and DVTS runs whose subtrees give DVTS at smaller budgets: grouped once
    pools = {key: {p.id: p for p in pools_from_records(records[key])}
             for key, s in plan.items() if s.role is not None or s.strategy == "dvts"}
    flops = {key: mean_flops(rs) for key, rs in records.items()}
    table: dict[int, dict[str, Measured]] = {}
    for budget in options.budgets:
        table[budget] = {}
        for s in settings_for(budget):
            s = COT if s.strategy == "cot" else s  # CoT does not depend on the budget: one run
            if s.key in plan:
                graded = [r for r in records[s.key] if not r.get("error") and r.get("correct") is not None]
                m = Measured(s, record_accuracies(records[s.key]), flops[s.key], pass_at_n(graded), s.key, False)
            elif s.strategy == "dvts":
                source = subtree_source(s, options.budgets, settings_for)
                m = estimate_from_subtrees(s, list(pools[source.key].values()), flops[source.key], source,
                                           options.seed)
            else:
                run = pool_key(max(options.budgets), s.temperature)
                m = estimate_from_pool(s, list(pools[run].values()), flops[run], run, options.seed)
            table[budget][s.key] = m
    every = [set(m.per_problem) for row in table.values() for m in row.values()] + [set(p) for p in pools.values()]
    common = set.intersection(*every)
    in_data_order = dict.fromkeys(problem_id(r) for rs in records.values() for r in rs)  # records come in data order
    ids = [i for i in in_data_order if i in common]
    if not ids:
        from .settings import SettingsError
        raise SettingsError("no problem was solved without an error under every setting: nothing to calibrate on")
    for row in table.values():
        for m in row.values():
            m.per_problem = {i: m.per_problem[i] for i in ids}
    return Measurements(table, ids, len(set().union(*every)) - len(ids), pools)


def problem_id(record: dict):
    """A record's problem id as pools and record_accuracies name it."""
    return record.get("id") if record.get("id") is not None else f"line-{record.get('line')}"


def estimate_from_pool(setting: Setting, pools: list[Pool], pool_flops: float, run: str, seed: int) -> Measured:
    """Majority or Best-of-N at setting.n from pools of N_max paths: the expected accuracy over
    random n-subsets (pools.expected_accuracy); FLOPs scale as n / N_max. The early-stopping
    variants over random orders of n paths (pools.adaptive), their FLOPs scaled again by the
    share of those paths' tokens they sampled."""
    oracle = expected_accuracy(pools, "pass", setting.n)
    n_max = pools[0].size if pools else setting.n
    flops = pool_flops * setting.n / n_max
    if setting.strategy.endswith("-adaptive"):
        verified = setting.strategy == "best-of-n-adaptive"
        estimate = adaptive_accuracy(pools, setting.n, threshold=setting.stop_threshold, use_verifier=verified,
                                     selection=setting.selection or "vote", aggregation=setting.aggregation,
                                     seed=seed)
        ratio = estimate.token_ratio
        return Measured(setting, estimate.accuracy.by_id(), flops * (ratio if ratio == ratio else 1.0),
                        round(oracle.mean, 4), run, True)
    method = "majority" if setting.strategy == "majority" else setting.selection
    accuracy = expected_accuracy(pools, method, setting.n, aggregation=setting.aggregation, seed=seed)
    return Measured(setting, accuracy.by_id(), flops, round(oracle.mean, 4), run, True)


def estimate_from_subtrees(setting: Setting, pools: list[Pool], run_flops: float, source: Setting,
                           seed: int) -> Measured:
    """DVTS at setting.n from the subtrees of the same setting's run at a larger budget
    (pools.subtrees); FLOPs scale as n / N of that run, as its subtrees do."""
    accuracy = subtree_accuracy(pools, setting.n, setting.beam_width, selection=setting.selection or "vote",
                                seed=seed)
    oracle = subtree_accuracy(pools, setting.n, setting.beam_width, selection="pass", seed=seed)
    return Measured(setting, accuracy.by_id(), run_flops * setting.n / source.n, round(oracle.mean, 4), source.key,
                    True)


def mean_flops(records: list[dict]) -> float:
    ok = [r for r in records if not r.get("error")]
    # a run that replayed shared draws costs what it would have alone (calibrate compares settings)
    return sum(r.get("compute", {}).get("flops_unshared", r.get("compute", {}).get("flops", 0.0))
               for r in ok) / len(ok) if ok else 0.0


# --- 4. the difficulty model --------------------------------------------------------------------

def fit_probe_model(k: int, pools: dict, bin_of: dict, calib: list, options: Options,
                    temperature: float | None) -> dict:
    """The difficulty model for probes of k paths, fitted on the calibration problems (the first
    k paths of each reference pool are its probe). Without it (no scikit-learn, one bin only, a
    pool too small) the entry says why, and auto bins the probe's agreement instead."""
    entry: dict = {"probe_paths": k,
                   "probe_settings": {"aggregation": options.base_aggregation,
                                      **({"temperature": temperature} if temperature is not None else {})},
                   "model": None}
    smallest = min(p.size for p in pools.values())
    if k > smallest:
        return {**entry, "reason": f"a probe of {k} paths from a pool of {smallest}"}
    try:
        entry["model"] = fit_difficulty_model([probe_features(pools[i].probe(k, options.base_aggregation))
                                               for i in calib], [bin_of[i] for i in calib],
                                              seed=options.seed, thresholds=options.bins)
    except ImportError:
        entry["reason"] = SKLEARN_HINT
    except ValueError as e:
        entry["reason"] = str(e)
    return entry


def probe_bins(pools: dict, ids, entry: dict, options: Options) -> dict:
    """Problem id -> the bin auto would predict from its probe (the pool's first k paths)."""
    model = entry if entry.get("model") else None
    k = entry["probe_paths"]
    return {i: predicted_bin(pools[i].probe(k, options.base_aggregation), model, options.bins)[0] for i in ids}


# --- 5. choices and estimates -------------------------------------------------------------------------

def choice_of(decided: dict, m: Measured, calib: list, bin_of: dict, options: Options) -> Choice:
    """A profile Choice from choose_profile's entry: the setting, the rule, and the accuracy's
    interval over the problems it was decided on."""
    on = [i for i in calib if bin_of[i] in decided["decided_on"]]
    interval = bootstrap_interval([m.per_problem[i] for i in on], level=options.level, seed=options.seed,
                                  resamples=options.resamples)
    s = m.setting
    return Choice(bin=decided["bin"], budget=decided["budget"], strategy=s.strategy,
                  accuracy=float(decided["accuracy"]), flops=float(m.flops), problems=decided["problems"],
                  beam_width=s.beam_width, selection=s.selection, aggregation=s.aggregation,
                  temperature=s.temperature, stop_threshold=s.stop_threshold, pass_at_n=None if m.pass_at_n is None else float(m.pass_at_n),
                  setting=s.key, rule=decided["rule"], default=decided["default"],
                  interval=[round(float(interval.lo), 4), round(float(interval.hi), 4)],
                  difference=decided["difference"], margin=decided["margin"])


def estimate_rows(measured: Measurements, calib: list, options: Options) -> list[dict]:
    """Every setting at every budget on the calibration problems, with its interval."""
    rows = []
    for budget, row in measured.table.items():
        for key, m in row.items():
            iv = bootstrap_interval([m.per_problem[i] for i in calib], level=options.level, seed=options.seed,
                                    resamples=options.resamples)
            rows.append({"budget": budget, "setting": key, "settings": m.setting.overrides(),
                         "accuracy": round(iv.mean, 4), "lo": round(iv.lo, 4), "hi": round(iv.hi, 4),
                         "flops": m.flops, "pass_at_n": m.pass_at_n, "problems": len(calib), "run": m.run,
                         "estimated": m.estimated})
    return rows


def frontier(estimates: list[dict]) -> list[dict]:
    """The settings no other beats on both accuracy and FLOPs (CoT listed once)."""
    points = list({e["setting"]: {"setting": e["setting"], "accuracy": e["accuracy"], "lo": e["lo"], "hi": e["hi"],
                                  "flops": e["flops"], "pass_at_n": e["pass_at_n"]} for e in estimates}.values())
    front = [p for p in points
             if not any(q["accuracy"] >= p["accuracy"] and q["flops"] < p["flops"] or
                        q["accuracy"] > p["accuracy"] and q["flops"] <= p["flops"] for q in points)]
    return sorted(front, key=lambda p: p["flops"])


# --- 6. the held-out check ------------------------------------------------------------------------------

def check_heldout(decided: list[dict], cells: dict, bin_of: dict, held: set, majority: dict, pools: dict,
                  models: list[dict], options: Options) -> dict:
    """Per budget, the profile on the held-out problems, each routed by the bin its probe
    predicts (as auto routes it): predicted against realized accuracy, the best fixed setting and
    majority; `agrees`: the predicted accuracy lies inside the realized interval."""
    budgets = []
    ids = [i for i in bin_of if i in held]
    for budget in sorted(cells):
        entry = next(m for m in models if m["probe_paths"] == probe_size(budget))
        # every problem routed by its probe's bin: the calibration problems' make the prediction
        predicted_bins = probe_bins(pools, list(bin_of), entry, options)
        [row] = evaluate_profile_on_heldout([c for c in decided if c["budget"] == budget], {budget: cells[budget]},
                                            predicted_bins, held, majority={budget: majority[budget]},
                                            level=options.level, seed=options.seed, resamples=options.resamples)
        realized, predicted = row["profile"]["realized"], row["profile"]["predicted"]
        row["agrees"] = realized["lo"] <= predicted["mean"] <= realized["hi"]
        row["difficulty_from"] = "difficulty model" if entry.get("model") else "answer agreement"
        row["bin_accuracy"] = round(sum(predicted_bins[i] == bin_of[i] for i in ids) / len(ids), 4)
        budgets.append(row)
    return {"share": options.holdout, "seed": options.seed, "problems": len(ids), "level": options.level,
            "budgets": budgets}
