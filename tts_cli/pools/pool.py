"""A pool: the candidates one run sampled for one problem, reduced to integer arrays.

A run that samples N_max independent paths per problem (Best-of-N at N_max, every step scored)
holds, inside it, a run at every smaller budget n: any n of its paths are n independent paths.
`Pool` keeps what choosing among them needs, computed once: each candidate's answer group (one
pass of `answers_match`, grouped as `search.common.group_answers` groups them), which groups and
which candidates are right, and the step scores, so that estimating majority, PRM-Vote, PRM-Max
and pass@n at any n (estimate.py) never calls `answers_match` again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

import numpy as np

from ..answers import answers_match
from ..search.common import aggregate
from ..search.types import AGGREGATIONS

NO_ANSWER = -1  # the group id of a candidate without an answer: never chosen, never right
NO_BRANCH = -1  # the subtree of a candidate whose record does not say (not a DVTS run)


class PoolError(ValueError):
    """A pool cannot answer what was asked (one line for the user)."""


class ProbePath(NamedTuple):
    """The two things a probe looks at in a path (what search.types.Candidate carries)."""

    answer: str | None
    score: float | None  # aggregated path score; None when nothing was scored


def _field(candidate: Any, name: str):
    """A candidate is a record's dict or a search.types.Candidate."""
    if isinstance(candidate, dict):
        return candidate.get(name)
    return getattr(candidate, name, None)


@dataclass(frozen=True, eq=False)
class Pool:
    """One problem's candidates, in the order the run recorded them (the order in which they
    finished: `choose_answer` breaks ties by it).

    groups[i]          answer group of candidate i (0, 1, ... by first appearance; NO_ANSWER)
    group_answers[g]   the group's first spelling: the key `group_answers` would give it
    group_correct[g]   answers_match(group key, reference): what grading the chosen answer says
    candidate_correct[i] answers_match(candidate's answer, reference): what pass@n counts
    answers[i]         the candidate's answer as recorded (None: no answer)
    step_scores[i]     the candidate's step scores, or None when the record has none
    scores[i]          the score the run recorded (aggregated with the run's `aggregation`)
    tokens[i]          tokens the policy generated for candidate i (NaN: not recorded); records
                       written before candidates kept their own count get their run's generated
                       tokens shared out by text length (`tokens_estimated`)
    branches[i]        DVTS: the subtree candidate i grew in (NO_BRANCH: not recorded)
    """

    id: Any
    groups: np.ndarray
    group_answers: tuple[str, ...]
    group_correct: np.ndarray
    candidate_correct: np.ndarray
    answers: tuple[str | None, ...]
    step_scores: tuple[tuple[float, ...] | None, ...]
    scores: tuple[float | None, ...]
    aggregation: str | None = None
    tokens: np.ndarray | None = None
    tokens_estimated: bool = False
    branches: np.ndarray | None = None

    @classmethod
    def from_candidates(cls, candidates: Iterable, reference: str, *, id: Any = None,
                        aggregation: str | None = None, tokens_generated: float | None = None) -> "Pool":
        """Group the candidates' answers once. Each answer joins the first group whose key (first
        spelling) it matches, else starts a group: exactly `group_answers`. Calls answers_match
        at most groups x candidates + groups + candidates times."""
        if reference is None:
            raise PoolError(f"problem {id}: no reference answer: a pool needs one to say what is right")
        candidates = list(candidates)
        keys: list[str] = []
        groups = np.full(len(candidates), NO_ANSWER, dtype=np.int64)
        answers, step_scores, scores, tokens, lengths, branches = [], [], [], [], [], []
        for i, c in enumerate(candidates):
            branch = _field(c, "branch")
            branches.append(NO_BRANCH if branch is None else int(branch))
            count = _field(c, "tokens")
            tokens.append(float("nan") if count is None else float(count))
            lengths.append(len("".join(_field(c, "steps") or [])))
            answer = _field(c, "answer")
            answers.append(answer)
            raw_steps = _field(c, "step_scores")
            step_scores.append(None if raw_steps is None else tuple(float(s) for s in raw_steps))
            score = _field(c, "score")
            scores.append(None if score is None else float(score))
            if answer is None:
                continue
            g = next((j for j, k in enumerate(keys) if answers_match(answer, k)), None)
            if g is None:
                g = len(keys)
                keys.append(answer)
            groups[i] = g
        tokens = np.array(tokens, dtype=float)
        estimated = bool(np.isnan(tokens).any()) and tokens_generated is not None and sum(lengths) > 0
        if estimated:
            tokens = tokens_generated * np.array(lengths, dtype=float) / sum(lengths)
        return cls(id=id, groups=groups, group_answers=tuple(keys),
                   group_correct=np.array([answers_match(k, reference) for k in keys], dtype=bool),
                   candidate_correct=np.array([answers_match(a, reference) for a in answers], dtype=bool),
                   answers=tuple(answers), step_scores=tuple(step_scores), scores=tuple(scores),
                   aggregation=aggregation, tokens=tokens, tokens_estimated=estimated,
                   branches=np.array(branches, dtype=np.int64))

    @classmethod
    def from_record(cls, record: dict) -> "Pool":
        """From one line of a results file (grade.record_for): its candidates, reference, id, and
        the aggregation its run used (config.aggregation)."""
        pid = record.get("id") if record.get("id") is not None else f"line-{record.get('line')}"
        generated = ((record.get("compute") or {}).get("policy") or {}).get("tokens_generated")
        return cls.from_candidates(record.get("candidates") or [], record.get("reference"), id=pid,
                                   aggregation=(record.get("config") or {}).get("aggregation"),
                                   tokens_generated=generated)

    @property
    def size(self) -> int:
        """N_max: how many candidates the run sampled."""
        return len(self.groups)

    @property
    def pass_at_1(self) -> float:
        """The share of right candidates: the policy's pass@1 on this problem (its difficulty)."""
        return float(self.candidate_correct.mean()) if self.size else 0.0

    def path_scores(self, aggregation: str | None = None) -> np.ndarray:
        """Each candidate's path score as `Run.path_score` computes it: aggregate(step scores,
        aggregation), 0.0 when nothing was scored. aggregation None: the run's own."""
        return np.array([self.candidate_score(i, aggregation) or 0.0 for i in range(self.size)])

    def candidate_score(self, i: int, aggregation: str | None = None) -> float | None:
        """Candidate i's aggregated score, None when nothing was scored (search.types.Candidate's
        `score`). A candidate recorded without step scores only has the score its run recorded,
        which is known for the run's own aggregation only."""
        aggregation = aggregation or self.aggregation
        steps, recorded = self.step_scores[i], self.scores[i]
        if steps is None and recorded is None:
            return None
        if aggregation is None:
            raise PoolError(f"problem {self.id}: say which aggregation ({', '.join(AGGREGATIONS)}): "
                            "the record does not say which its run used")
        if aggregation not in AGGREGATIONS:
            raise PoolError(f"unknown aggregation {aggregation!r}: one of {', '.join(AGGREGATIONS)}")
        if steps is not None:
            return aggregate(list(steps), aggregation)
        if aggregation != self.aggregation:
            raise PoolError(f"problem {self.id}: candidate {i} has no step_scores, so only the run's own "
                            f"aggregation ({self.aggregation}) is known, not {aggregation}")
        return recorded

    def probe(self, k: int, aggregation: str | None = None) -> list[ProbePath]:
        """The first k candidates as a probe of k paths sees them (answer; aggregated score, None
        when unscored): what probe_features takes."""
        if not 1 <= k <= self.size:
            raise PoolError(f"problem {self.id}: a probe of {k} paths from a pool of {self.size}")
        return [ProbePath(self.answers[i], self.candidate_score(i, aggregation)) for i in range(k)]


def pools_from_records(records: Iterable[dict]) -> list[Pool]:
    """A pool per graded record; records with an error or without a reference are left out
    (as calibrate leaves out error records), so every estimate is over the same problems."""
    return [Pool.from_record(r) for r in records if not r.get("error") and r.get("reference") is not None]


def record_accuracies(records: Iterable[dict]) -> dict:
    """Problem id -> 1.0 / 0.0 from a run measured on its own (CoT, beam search, DVTS): the same
    shape as Accuracy.by_id(), so such runs enter the choice rule next to pool estimates."""
    out = {}
    for r in records:
        if r.get("error") or r.get("correct") is None:
            continue
        pid = r.get("id") if r.get("id") is not None else f"line-{r.get('line')}"
        out[pid] = 1.0 if r["correct"] else 0.0
    return out
