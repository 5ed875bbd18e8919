"""Stage 3: the split of problems and the logistic head."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import SKLEARN_HINT, TrainingError
from .report import auc, within_problem_auc
from .steps import StepTable


def split_problems(ids: Iterable[str], holdout: float, seed: int = 0) -> set[str]:
    """The held-out problem ids: each problem is held out when a hash of (seed, id) falls in the
    first `holdout` of the hash range, so the split does not depend on the file's order and a
    problem added later never moves another across it. With two or more problems, each side
    gets at least one (the problem nearest the threshold crosses)."""
    if not 0.0 < holdout < 1.0:
        raise TrainingError(f"--holdout must be between 0 and 1, got {holdout}")
    ids = sorted(set(ids))
    u = {i: int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:15], 16) / 16 ** 15 for i in ids}
    held = {i for i in ids if u[i] < holdout}
    if len(ids) >= 2 and not held:
        held = {min(ids, key=u.get)}
    if len(ids) >= 2 and len(held) == len(ids):
        held.discard(max(ids, key=u.get))
    return held


@dataclass
class Head:
    weight: np.ndarray
    bias: float
    c: float  # the L2 strength chosen (scikit-learn's C: smaller is stronger)
    cv: dict  # C -> cross-validated scores

    def score(self, x: np.ndarray) -> np.ndarray:
        """What ValueHeadPRM computes from a hidden state."""
        return 1.0 / (1.0 + np.exp(-(x @ self.weight + self.bias)))

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, weight=self.weight.astype(np.float32), bias=np.array([self.bias], np.float32))


C_GRID = (0.001, 0.01, 0.1, 1.0)


def require_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise TrainingError(SKLEARN_HINT)


def _fit(train: StepTable, c: float):
    """Logistic regression on standardized features against the soft labels (each row counts as
    a positive with weight p and a negative with weight 1 - p: cross-entropy with soft targets),
    the two classes weighted to equal totals. Returns (weight, bias) on raw features."""
    from sklearn.linear_model import LogisticRegression
    mean, std = train.x.mean(axis=0), train.x.std(axis=0) + 1e-6
    z = (train.x - mean) / std
    pos, neg = train.soft.sum(), (1 - train.soft).sum()
    if pos <= 0 or neg <= 0:
        raise TrainingError(f"every training step has the same label ({'right' if neg <= 0 else 'wrong'}): "
                            "nothing to learn; use more problems or samples, or easier ones")
    x2 = np.concatenate([z, z])
    y2 = np.concatenate([np.ones(len(z)), np.zeros(len(z))])
    w2 = np.concatenate([train.soft * (pos + neg) / (2 * pos), (1 - train.soft) * (pos + neg) / (2 * neg)])
    keep = w2 > 0
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(x2[keep], y2[keep], sample_weight=w2[keep])
    w = model.coef_[0] / std
    b = float(model.intercept_[0] - (model.coef_[0] * mean / std).sum())
    return w, b


def _platt(logits: np.ndarray, soft: np.ndarray) -> tuple[float, float]:
    """(a, c) so that sigmoid(a * logit + c) fits the soft labels (Platt scaling, unweighted)."""
    from sklearn.linear_model import LogisticRegression
    z = logits[:, None]
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(np.concatenate([z, z]), np.concatenate([np.ones(len(z)), np.zeros(len(z))]),
              sample_weight=np.concatenate([soft, 1 - soft]))
    return float(model.coef_[0][0]), float(model.intercept_[0])


def fit_head(train: StepTable, *, folds: int = 5, grid: Iterable[float] = C_GRID) -> Head:
    """The head, with C chosen by cross-validation over training problems (never steps): the
    within-problem AUC of the final step (what choosing among samples needs), then pooled AUC."""
    require_sklearn()
    from sklearn.model_selection import GroupKFold
    problems = np.unique(train.problem)
    cv, held_logits = {}, {}
    if len(problems) >= 3:
        k = min(folds, len(problems))
        splits = list(GroupKFold(n_splits=k).split(train.x, groups=train.problem))
        for c in grid:
            logits = np.zeros(len(train.soft))
            try:
                for tr, te in splits:
                    w, b = _fit(train.subset(tr), c)
                    logits[te] = train.x[te] @ w + b
            except TrainingError:  # a fold with one class: this grid point cannot be judged
                continue
            scored = 1 / (1 + np.exp(-logits))
            held_logits[c] = logits
            cv[c] = {"within_problem_auc": within_problem_auc(scored, train), "step_auc": auc(scored, train.label)}
    best = max(cv, key=lambda c: (_nan_low(cv[c]["within_problem_auc"]), _nan_low(cv[c]["step_auc"]), -c)) \
        if cv else 0.1
    w, b = _fit(train, best)
    if best in held_logits:
        # Balancing the classes moves the scores away from the label rates; Platt scaling on the
        # cross-validated logits (not the training fit's own, which overfit) puts them back, so a
        # score reads as the chance that the step leads to the answer. Folded into (w, b).
        a, c0 = _platt(held_logits[best], train.soft)
        w, b = w * a, b * a + c0
    return Head(weight=w, bias=b, c=best, cv={str(c): v for c, v in cv.items()})


def _nan_low(v: float | None) -> float:
    return -1.0 if v is None or math.isnan(v) else v


