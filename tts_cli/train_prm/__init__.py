"""`tts train-prm`: a process reward head for your own policy, trained on this machine.

Four stages, each resumable (what a stage finished is on disk, and a rerun goes on from there):

1. Rollouts and step labels (rollouts.jsonl, one line per problem, appended as problems finish).
   The policy samples `samples` solutions per problem, with the prompt and step format the
   searches use, through the scheduler (many problems in flight, one decode for all their
   sequences). Math-Shepherd's labels: from the end of each step, `rollouts` completions forked
   from the step's KV (nothing is re-read); a step's soft label is the share of completions that
   reach the reference answer, its hard label whether any does. The sample's own continuation is
   one more completion from each of its steps, so the last step's label is the sample's outcome.
   `rollouts=0` gives outcome labels: every step labelled by its own path's final correctness.
2. Features (features/*.npz): the hidden state at each step's end from the base model, read in
   the value_head PRM format ("{problem}\\n{step1}\\n{step2}\\n..."), so the trained head is a
   value_head PRM that scores incrementally with the existing verifier code. With `features="policy"`
   stage 1 keeps each step's state from its own decode instead (features-policy/; the state the
   step's last token was sampled from, what a policy_head reads live) and nothing is read again.
3. A logistic head (scikit-learn; L2 strength chosen by cross-validation over training problems,
   classes balanced), fitted on a split of problems: held-out problems never lend a step to
   training. Standardization is folded into the weights, so the head is just (weight, bias).
4. The report (report.json, reliability.png) on the held-out problems: step AUC and accuracy,
   AUC within each problem, a reliability table, what choosing by the head would have scored
   among each problem's samples, and the same for the baselines (the policy's confidence,
   optionally the policy as judge) on the same steps. The head and a registry entry are saved,
   so `--prm NAME` works in every command.
"""

from .errors import SKLEARN_HINT, TrainingError
from .features import FeatureStore, HiddenStateReader, collect_features, step_features
from .fit import Head, fit_head, split_problems
from .pipeline import Progress, TrainSettings, default_prm_dir, rollout_identity, train, train_named
from .report import auc, evaluate, registry_entry, reliability, save_entry, selection, within_problem_auc
from .rollouts import LabelledSample, ProblemRollouts, collect_rollouts, label_rollouts, rollout_slots
from .steps import StepTable, step_table

__all__ = ["FeatureStore", "Head", "HiddenStateReader", "LabelledSample", "ProblemRollouts", "Progress",
           "SKLEARN_HINT", "StepTable", "TrainSettings", "TrainingError", "auc", "collect_features",
           "collect_rollouts", "default_prm_dir", "evaluate", "fit_head", "label_rollouts", "registry_entry",
           "reliability", "rollout_identity", "rollout_slots", "save_entry", "selection", "split_problems",
           "step_features", "step_table", "train", "train_named", "within_problem_auc"]
