"""Stage 1: sampled solutions and their step labels (Math-Shepherd: completions from each step's
end, forked from its KV cache), through the scheduler; one line per problem in rollouts.jsonl."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..datasets import Problem
from ..grade import PROBLEM_ERRORS
from ..results import ResultsFile
from ..answers import answers_match, extract_answer
from ..search.common import Path as SearchPath
from ..search.common import Search
from ..search.scheduler import Job
from ..search.types import Parallel, SearchConfig
from ..verifiers.confidence import mean_token_probability


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


def rollout_slots(samples: int, rollouts: int) -> int:
    """Policy sequences one problem holds at once: each sample and its step's completions."""
    return samples * (1 + rollouts)


def label_rollouts(search: Search, config: SearchConfig, *, samples: int, rollouts: int, reference: str):
    """A scheduler job (written like a strategy): `samples` solutions of one problem, each step
    labelled by `rollouts` completions forked from its end."""
    run = search.run("majority", config, use_verifier=False)
    paths = run.spread(run.start(), samples)
    done = yield Parallel([_labelled_sample(run, p, rollouts, reference) for p in paths])
    return ProblemRollouts(samples=done)


def _labelled_sample(run, path: SearchPath, k: int, reference: str):
    rollouts, reached, confidence = [], [], []
    while path.node.state != "finished":
        (node,) = yield from run.step([path])
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
                     on_record: Callable[[dict], None] | None = None) -> tuple[list[dict], int]:
    """Stage 1: roll out every problem not yet in `path`; records appended (fsynced) as problems
    finish. `run`: the configuration the file's header records (a resume with another one
    stops, unless `restart`). Returns (the records of `problems`, the latest of each, and
    problems skipped as already done). A problem whose search fails on its own (a prompt too
    long for the context) is recorded with its error."""
    results = ResultsFile(path, run if run is not None else {"samples": samples, "rollouts": rollouts},
                          kind="rollouts", restart=restart, say=say)
    try:
        todo = [p for p in problems if not results.done(p.key)]
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


