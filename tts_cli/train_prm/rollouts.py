"""Stage 1: sampled solutions and their step labels (Math-Shepherd: completions from each step's
end, forked from its KV cache), through the scheduler; one line per problem in rollouts.jsonl."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..datasets import Problem
from ..grade import PROBLEM_ERRORS
from ..results import ResultsFile
from ..answers import answers_match, extract_answer
from ..search.common import Path as SearchPath
from ..search.common import Search
from ..search.scheduler import Job
from ..search.types import Parallel, SearchConfig
from ..verifiers.confidence import mean_token_probability
from .features import feature_key


@dataclass
class LabelledSample:
    steps: list[str]
    answer: str | None
    correct: bool
    finish_reason: str | None
    confidence: list[float]  # per step: exp(mean token log-prob), the `confidence` verifier's score
    rollouts: list[int]  # per step: completions from its end (the sample's own continuation included)
    reached: list[int]  # per step: how many of them reached the reference answer

    @property
    def soft(self) -> list[float]:
        return [c / r for c, r in zip(self.reached, self.rollouts)]

    @property
    def hard(self) -> list[bool]:
        return [c > 0 for c in self.reached]


@dataclass
class ProblemRollouts:
    samples: list[LabelledSample]
    compute: dict = field(default_factory=dict)  # set by the scheduler
    # a policy engine with hidden states: each step's feature for a policy_head (rows in sample
    # then step order, as step_features gives them), kept in a FeatureStore, not in the record
    features: np.ndarray | None = None


def rollout_slots(samples: int, rollouts: int) -> int:
    """Policy sequences one problem holds at once: each sample and its step's completions."""
    return samples * (1 + rollouts)


def label_rollouts(search: Search, config: SearchConfig, *, samples: int, rollouts: int, reference: str):
    """A scheduler job (written like a strategy): `samples` solutions of one problem, each step
    labelled by `rollouts` completions forked from its end."""
    run = search.run("majority", config, use_verifier=False)
    paths = run.spread(run.start(), samples)
    states: list[list[np.ndarray]] = [[] for _ in paths]
    done = yield Parallel([_labelled_sample(run, p, rollouts, reference, s) for p, s in zip(paths, states)])
    rows = [h for s in states for h in s]
    return ProblemRollouts(samples=done, features=np.stack(rows) if rows else None)


def _labelled_sample(run, path: SearchPath, k: int, reference: str, states: list[np.ndarray]):
    """One sample, its steps labelled; with a hidden-state policy engine, `states` gets each step's
    state (Step.hidden: what a policy_head will read when it scores that step live)."""
    rollouts, reached, confidence = [], [], []
    while path.node.state != "finished":
        (node,) = yield from run.step([path])
        if getattr(run.engine, "hidden", False):  # a step that sampled nothing (a full context) has no state: zeros
            h = path.seq.hidden
            states.append(h if h is not None else np.zeros(run.engine.model.n_embd, np.float32))
        confidence.append(mean_token_probability(run.logprobs.get(node.id, [])) or 0.0)
        hits = 0
        if k and node.state != "finished":
            forks = [SearchPath(seq, node) for seq in run.engine.fork(path.seq, k)]
            answers = yield Parallel([_complete(run, f) for f in forks])
            hits = sum(answers_match(a, reference) for a in answers)
        rollouts.append(k if node.state != "finished" else 0)
        reached.append(hits)
    answer = extract_answer(run.path_text(path.node)).answer
    correct = answers_match(answer, reference)
    steps = [n.step for n in run.path_nodes(path.node)]
    run.release([path])
    run.done_with_slots(1 + k)
    # The sample's own continuation is one more completion from every one of its steps.
    return LabelledSample(steps=steps, answer=answer, correct=correct, finish_reason=path.node.reason,
                          confidence=confidence, rollouts=[r + 1 for r in rollouts],
                          reached=[c + correct for c in reached])


def _complete(run, path: SearchPath):
    """Step a forked completion to its end; its answer."""
    while path.node.state != "finished":
        yield from run.step([path])
    answer = extract_answer(run.path_text(path.node)).answer
    run.release([path])
    return answer


def rollout_record(problem: Problem, out: ProblemRollouts) -> dict:
    return {"key": problem.key, "id": problem.id, "line": problem.line, "problem": problem.problem,
            "reference": problem.answer,
            "samples": [asdict(s) for s in out.samples], "compute": out.compute}


def sample_from_record(d: dict) -> LabelledSample:
    return LabelledSample(**{k: d[k] for k in LabelledSample.__dataclass_fields__})


def collect_rollouts(problems: list[Problem], path: Path, scheduler, config: SearchConfig, *, samples: int,
                     rollouts: int, run: dict | None = None, restart: bool = False, say=None,
                     on_record: Callable[[dict], None] | None = None, features=None) -> tuple[list[dict], int]:
    """Stage 1: roll out every problem not yet in `path`; records appended (fsynced) as problems
    finish. `run`: the configuration the file's header records (a resume with another one
    stops, unless `restart`). Returns (the records of `problems`, the latest of each, and
    problems skipped as already done). A problem whose search fails on its own (a prompt too
    long for the context) is recorded with its error. `features` (a FeatureStore; the scheduler's
    engine made with hidden=True): each problem's step states are stored before its record is
    written, and a problem recorded without them is rolled out again."""
    results = ResultsFile(path, run if run is not None else {"samples": samples, "rollouts": rollouts},
                          kind="rollouts", restart=restart, say=say)
    try:
        todo = [p for p in problems if not results.done(p.key)
                or (features is not None and results.latest[p.key].get("samples")
                    and not features.has(results.latest[p.key]))]
        skipped = len(problems) - len(todo)
        slots = rollout_slots(samples, rollouts)
        jobs = (Job(p.problem, _job(samples, rollouts, p.answer), config, tag=p, slots=slots) for p in todo)
        for job, out in scheduler.run(jobs):
            if isinstance(out, BaseException):
                if not isinstance(out, PROBLEM_ERRORS):
                    raise out
                rec = {"key": job.tag.key, "id": job.tag.id, "line": job.tag.line, "problem": job.tag.problem,
                       "error": str(out), "samples": []}
            else:
                rec = rollout_record(job.tag, out)
                if features is not None and out.features is not None:
                    features.add([feature_key(rec)], [out.features])
            results.write(rec)
            if on_record:
                on_record(rec)
        return [results.latest[p.key] for p in problems if p.key in results.latest], skipped
    finally:
        results.close()


def _job(samples: int, rollouts: int, reference: str):
    def label_problem(search, config):
        return label_rollouts(search, config, samples=samples, rollouts=rollouts, reference=reference)
    return label_problem


