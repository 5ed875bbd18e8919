"""Predicting a problem's difficulty bin from a probe of k paths (no reference answer).

`auto` today bins the probe's answer agreement with the fixed thresholds of the pass@1 bins.
This fits a small multinomial logistic regression from the probe's features to the bin the
problem really has (offline: pass@1 over many paths), and keeps it as plain lists so that a
profile YAML can hold it and `auto` can apply it without scikit-learn:

    bin = classes[argmax_k (coef[k] . x + intercept[k])]

Features (probe_features), each in [0, 1] for scores that are probabilities:
- agreement: difficulty.agreement, sqrt of the share of path pairs with the same answer;
- answered: share of paths with an answer;
and when the paths were scored (any score not None; an unscored path counts 0.0, as a path
score does):
- mean_score, max_score: mean and max of the path scores;
- top_share: the summed score of the answer with the largest sum (PRM-Vote's pick) over the
  summed score of all paths (0 when that sum is 0).

Like difficulty.py, this imports nothing from search, so `auto` can import it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .difficulty import BIN_NAMES, Bins, agreement
from .answers import answers_match

FEATURES = ("agreement", "answered", "mean_score", "max_score", "top_share")
SKLEARN_HINT = "fitting the difficulty model needs scikit-learn: pip install 'tts_cli[train]'"
MODEL_KIND = "logistic-regression"


class _Path:
    __slots__ = ("answer", "score")

    def __init__(self, answer, score):
        self.answer, self.score = answer, score


def probe_features(candidates: Sequence) -> dict[str, float]:
    """The features of a probe: candidates are objects with .answer and .score (search.types.
    Candidate, pools.ProbePath) or dicts with those keys."""
    paths = [_Path(c.get("answer"), c.get("score")) if isinstance(c, dict) else c for c in candidates]
    if not paths:
        raise ValueError("a probe needs at least one path")
    out = {"agreement": agreement(paths),
           "answered": sum(p.answer is not None for p in paths) / len(paths)}
    if any(p.score is not None for p in paths):
        scores = [p.score or 0.0 for p in paths]
        sums: list[list] = []  # [answer key, summed score], keys as group_answers makes them
        for p, s in zip(paths, scores):
            if p.answer is None:
                continue
            group = next((g for g in sums if answers_match(p.answer, g[0])), None)
            if group is None:
                sums.append([p.answer, s])
            else:
                group[1] += s
        total = sum(scores)
        top = max((g[1] for g in sums), default=0.0)
        out.update(mean_score=total / len(scores), max_score=max(scores),
                   top_share=top / total if total > 0 else 0.0)
    return out


def fit_difficulty_model(features: Sequence[Mapping[str, float]], bins: Sequence[str], *, folds: int = 5,
                         c: float = 1.0, seed: int = 0, thresholds: Bins = Bins()) -> dict:
    """Fit bins from probe features (one row per problem). Uses the features every row has.
    Returns the model as plain types: kind, features, classes, coef (classes x features),
    intercept, and how good it is: cv_accuracy (stratified `folds`-fold cross-validation; None
    when a bin has under 2 problems), problems, and two baselines on the same problems: always
    the most common bin, and today's rule (thresholds applied to agreement)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
    except ImportError:
        raise ImportError(SKLEARN_HINT) from None
    if len(features) != len(bins):
        raise ValueError(f"{len(features)} feature rows for {len(bins)} bins")
    unknown = set(bins) - set(BIN_NAMES)
    if unknown:
        raise ValueError(f"unknown bin(s) {', '.join(sorted(unknown))}: bins are {', '.join(BIN_NAMES)}")
    if len(set(bins)) < 2:
        raise ValueError("every problem is in one bin: nothing to tell apart")
    names = [f for f in FEATURES if all(f in row for row in features)]
    x = np.array([[row[f] for f in names] for row in features], dtype=float)
    y = np.array(bins)
    smallest = min(int((y == b).sum()) for b in set(bins))
    k = min(folds, smallest)
    cv_accuracy = None
    if k >= 2:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        cv_accuracy = float(cross_val_score(LogisticRegression(C=c, max_iter=2000), x, y, cv=splits).mean())
    model = LogisticRegression(C=c, max_iter=2000).fit(x, y)
    coef, intercept = model.coef_.tolist(), model.intercept_.tolist()
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: class 1 iff w.x + b > 0
        coef, intercept = [[0.0] * len(names), coef[0]], [0.0, intercept[0]]
    common = max(set(bins), key=list(bins).count)
    rule = [thresholds.of(row["agreement"]) for row in features] if "agreement" in names else None
    return {"kind": MODEL_KIND, "features": names, "classes": [str(k) for k in model.classes_],
            "coef": coef, "intercept": intercept,
            "cv_accuracy": None if cv_accuracy is None else round(cv_accuracy, 4), "folds": k if k >= 2 else None,
            "problems": len(bins),
            "baselines": {"most_common_bin": round(list(bins).count(common) / len(bins), 4),
                          "agreement_thresholds": None if rule is None else
                          round(sum(r == b for r, b in zip(rule, bins)) / len(bins), 4)}}


def predict_bin(model: Mapping, features: Mapping[str, float]) -> str:
    """The bin a fitted model (fit_difficulty_model's dict) gives these probe features: what
    LogisticRegression.predict gives, computed from the stored lists (ties: the first class)."""
    if model.get("kind") != MODEL_KIND:
        raise ValueError(f"not a difficulty model (kind {model.get('kind')!r}, expected {MODEL_KIND!r})")
    missing = [f for f in model["features"] if f not in features]
    if missing:
        raise ValueError(f"the difficulty model needs probe feature(s) {', '.join(missing)} "
                         "(scored features need a verifier)")
    x = [float(features[f]) for f in model["features"]]
    logits = [sum(w * v for w, v in zip(row, x)) + b for row, b in zip(model["coef"], model["intercept"])]
    return model["classes"][max(range(len(logits)), key=lambda k: (logits[k], -k))]
