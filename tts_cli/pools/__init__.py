"""Accuracy at many budgets from one pool of sampled candidates per problem, with intervals.

Sample N_max paths per problem once (Best-of-N at N_max, every step scored); then any n of them
are a run at budget n, so majority, PRM-Vote, PRM-Max and pass@n at every n <= N_max, under any
aggregation, come from the same candidates (estimate.py), on the same problems, so two settings
compare problem by problem (intervals.py). The early-stopping strategies come from random
orders of the same candidates (adaptive.py); DVTS at smaller budgets from the subtrees of one
DVTS run (subtrees.py). A profile's choice per (bin, budget) must beat a
default by more than that noise (choice.py), and is checked on held-out problems (heldout.py).

    pools = pools_from_records(records)           # one Pool per graded problem
    acc = expected_accuracy(pools, "vote", 8, aggregation="min")
    bootstrap_interval(acc.per_problem)            # mean with a 90% interval over problems
"""

from .choice import DEFAULT_MIN_PROBLEMS, choose_profile, choose_setting, decision_bins
from .estimate import METHODS, TIES, Accuracy, expected_accuracy, problem_accuracy
from .heldout import evaluate_profile_on_heldout, heldout_ids
from .intervals import (Difference, Interval, bootstrap_interval, paired_difference, simultaneous_differences,
                        stratified_interval)
from .pool import NO_ANSWER, Pool, PoolError, ProbePath, pools_from_records, record_accuracies

__all__ = ["Accuracy", "DEFAULT_MIN_PROBLEMS", "Difference", "Interval", "METHODS", "NO_ANSWER", "Pool", "PoolError",
           "ProbePath", "TIES", "bootstrap_interval", "choose_profile", "choose_setting", "decision_bins",
           "evaluate_profile_on_heldout", "expected_accuracy", "heldout_ids", "paired_difference",
           "pools_from_records", "problem_accuracy", "record_accuracies", "simultaneous_differences",
           "stratified_interval"]
