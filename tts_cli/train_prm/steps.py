"""Every labelled step as rows of arrays: its features, labels, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import TrainingError
from .rollouts import sample_from_record


@dataclass
class StepTable:
    """Every labelled step as rows: features, labels, and where it came from."""

    x: np.ndarray
    soft: np.ndarray
    hard: np.ndarray
    outcome: np.ndarray  # the sample's final correctness
    confidence: np.ndarray
    problem: np.ndarray  # problem id per row
    sample: np.ndarray
    last: np.ndarray  # the sample's last step

    @property
    def label(self) -> np.ndarray:
        """The binary label metrics use: the step more likely leads to the answer than not."""
        return self.soft >= 0.5

    def subset(self, rows: np.ndarray) -> "StepTable":
        """The rows picked by a boolean mask or an index array."""
        return StepTable(**{k: getattr(self, k)[rows] for k in StepTable.__dataclass_fields__})


def step_table(records: list[dict], features: dict[str, np.ndarray]) -> StepTable:
    cols: dict[str, list] = {k: [] for k in StepTable.__dataclass_fields__ if k != "x"}
    xs = []
    for rec in records:
        if not rec.get("samples") or rec["id"] not in features:
            continue
        x = features[rec["id"]]
        row = 0
        for s, d in enumerate(rec["samples"]):
            sample = sample_from_record(d)
            for j in range(len(sample.steps)):
                xs.append(x[row])
                row += 1
                cols["soft"].append(sample.soft[j])
                cols["hard"].append(sample.hard[j])
                cols["outcome"].append(sample.correct)
                cols["confidence"].append(sample.confidence[j])
                cols["problem"].append(rec["id"])
                cols["sample"].append(s)
                cols["last"].append(j == len(sample.steps) - 1)
    if not xs:
        raise TrainingError("no labelled steps: every problem failed or produced no step")
    return StepTable(x=np.stack(xs).astype(np.float64), **{k: np.array(v) for k, v in cols.items()})


