"""Many searches on one policy engine and one verifier, interleaved at the token level.

A strategy is a generator that pauses on a request (`Generate`: the next step of some
sequences; `Score`: verifier scores for some steps; `Parallel`: independent parts of the search,
each a generator pausing on its own). The scheduler keeps many searches in flight and answers
their requests together:

- every llama_decode holds the next token of every live sequence of every search (continuous
  batching); a search (or part) whose requested step has ended for all its sequences resumes at
  once, and the sequences it then asks to step join the next decode. No search waits for
  another's step;
- the verifier requests of all searches waiting on one are answered in one `score` call;
- a new search is admitted when the sequence slots it may hold at once (`slots_needed`) fit
  beside those the searches in flight may still hold (a search gives slots back as its paths or
  subtrees end for good, so a new problem starts while others finish their last paths); one
  that could never fit is refused with a clear error;
- each search's compute is what the engines counted for its key (a shared decode is split by
  rows), so the searches' compute adds up to the engines' totals.

`tts solve` is this with one search.
"""

from __future__ import annotations

import collections
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..engine import EngineError, StepBatch
from .capacity import slots_needed, verifier_slots_needed
from .common import Search
from .memo import StepMemo
from .strategies import STRATEGIES
from .types import (NEEDS_VERIFIER, AwaitDraws, ConfigError, EventHandler, Generate, Parallel, Score, SearchConfig,
                    SearchResult)

_keys = itertools.count(1)  # search keys, unique in the process (engines may outlive a scheduler)


@dataclass
class Job:
    """One search to run: a problem, a strategy and its configuration. `tag` is the caller's.

    `strategy` is a name in STRATEGIES, or any generator function written like one (for
    instance PRM training's rollouts); such a job says how many sequence `slots` it may hold
    at once, and its result is any object with a `compute` attribute."""

    problem: str
    strategy: str | Callable
    config: SearchConfig
    tag: Any = None
    on_event: EventHandler | None = None
    slots: int | None = None  # sequences held at once; None: slots_needed(strategy, config)


@dataclass(eq=False)
class _Task:
    """A generator being driven: a whole search (parent None), or one part of a search's
    Parallel request."""

    job: Job
    search: Search
    gen: Iterator
    started: float
    parent: "_Task | None" = None
    index: int = 0  # its place among the parent's parts
    verifier_slots: int = 0
    request: Any = None
    batch: StepBatch | None = None
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    parts: list = field(default_factory=list)  # the running parts of a Parallel request
    part_results: list = field(default_factory=list)
    parts_left: int = 0


class Scheduler:
    """Many searches on one policy engine and one verifier. Driven by `add(job)` (a search to
    start when its sequences fit), `step()` (one unit of work: a merged verifier call, or one
    token for every live sequence; returns the searches that ended) and `done()` (nothing in
    flight or waiting). `run(jobs)` is the loop over them for a fixed list of jobs.

    max_searches: searches in flight at most (besides the slots, which always limit)."""

    def __init__(self, engine, verifier=None, *, max_searches: int = 1, memo: StepMemo | None = None):
        self.engine = engine
        self.verifier = verifier
        # memo: every search draws its steps through it, so searches of different settings share
        # the steps they would both sample (memo.py; what calibrate uses). None: independent draws.
        self.memo = memo
        self.max_searches = max(1, max_searches)
        self.concurrency = self.max_searches  # what the engine was sized for (the CLI says it)
        self.verifier_capacity = getattr(getattr(verifier, "engine", None), "n_seq_max", None)
        self.peak_searches = 0
        self.decode_steps = 0  # token-level llama_decode calls made for generation
        self.rows_decoded = 0  # sequences in them, summed
        self.score_calls = 0
        self.waiting: collections.deque[Job] = collections.deque()  # added, not started yet
        self.searches: list[_Task] = []  # whole searches in flight
        self.tasks: list[_Task] = []  # everything being driven: searches and their parts
        self._ended: list[tuple[Job, object]] = []  # jobs that failed to start, handed back by step()

    # --- the face -----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Searches running now (progress bars and feeders read it)."""
        return len(self.searches)

    def add(self, job: Job) -> None:
        """A search to run: it starts now if its sequences fit beside those in flight, else at
        the first step where they do (searches start in the order they were added)."""
        self.waiting.append(job)
        self._admit()

    def done(self) -> bool:
        """Nothing in flight, nothing waiting, nothing left to hand back."""
        return not self.searches and not self.waiting and not self._ended

    def has_room(self) -> bool:
        """Whether another search could start now (feeders add one when it could)."""
        return not self.waiting and len(self.searches) < self.max_searches

    def step(self) -> list[tuple[Job, SearchResult | BaseException]]:
        """Start what fits, then one unit of work: the verifier requests of every search waiting
        on it in one call, or else one token for every live sequence of every search in one
        llama_decode. Returns (job, result or exception) for each search that ended."""
        self._admit()
        self._wake()
        if not any(t.done for t in self.searches) and self.searches:
            scoring = [t for t in self.tasks if isinstance(t.request, Score)]
            if scoring:
                self._score(scoring)
            else:
                self._decode()
            self._wake()
            self._admit()  # slots the work freed (paths that ended) go to waiting searches at once
        ended, self._ended = self._ended, []
        for t in [t for t in self.searches if t.done]:
            self.searches.remove(t)
            self.tasks.remove(t)
            ended.append((t.job, self._finish(t)))
        return ended

    def cancel(self, job: Job) -> bool:
        """Stop a search (a client that went away): its generator is closed and everything it
        holds freed at once; it is not handed back by step(). False if it was not here."""
        if job in self.waiting:
            self.waiting.remove(job)
            return True
        t = next((t for t in self.searches if t.job is job), None)
        if t is None:
            return False
        self._drop(t)
        self.searches.remove(t)
        self.tasks = [x for x in self.tasks if x.job is not job]
        return True

    def close(self) -> None:
        """Free everything still held (interrupted, or failed)."""
        for t in self.searches:
            self._drop(t)
        self.searches, self.tasks = [], []

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, SearchResult | BaseException]]:
        """Run the jobs, up to max_searches at once; yield (job, result) as each search ends, in
        the order they end. A search that fails yields (job, exception) and frees what it held;
        the others go on. Jobs are taken from `jobs` only as there is room for them."""
        queue = iter(jobs)
        try:
            while True:
                while self.has_room() and (job := next(queue, None)) is not None:
                    self.add(job)
                if self.done():
                    return
                yield from self.step()
        finally:
            self.close()

    # --- admission ------------------------------------------------------------------------------
    def _admit(self) -> None:
        """Start waiting searches, in order, while they fit; one that can never fit fails."""
        while self.waiting and len(self.searches) < self.max_searches:
            job = self.waiting[0]
            try:
                started = self._start(job)
            except (ConfigError, EngineError) as e:
                self.waiting.popleft()
                self._ended.append((job, e))
                continue
            if not started:
                return
            self.waiting.popleft()
        self.peak_searches = max(self.peak_searches, len(self.searches))

    def _start(self, job: Job) -> bool:
        """Start the job if its sequences fit beside those the searches in flight may still hold."""
        custom = callable(job.strategy)
        if not custom and job.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {job.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if job.strategy in NEEDS_VERIFIER and self.verifier is None:
            raise ConfigError(f"{job.strategy} needs a verifier (--prm)")
        name = getattr(job.strategy, "__name__", job.strategy)
        need = job.slots or slots_needed(job.strategy, job.config)
        if need > self.engine.n_seq_max:
            raise EngineError(f"{name} with N={job.config.n} needs {need} sequences at once; the "
                              f"engine has {self.engine.n_seq_max} (open it for this budget)")
        # the prompt cache's slots stay free when a search can start without them
        capacity = max(need, self.engine.n_seq_max - getattr(self.engine, "prompt_cache_slots", 0))
        vcap = self.verifier_capacity
        vneed = min(verifier_slots_needed(job.strategy, job.config), vcap) if vcap and not custom else 0
        if self.searches and (sum(x.search.reserved for x in self.searches) + need > capacity or
                              (vcap and sum(x.verifier_slots for x in self.searches) + vneed > vcap)):
            return False
        search = Search(job.problem, self.engine, self.verifier, key=next(_keys), on_event=job.on_event,
                        memo=None if custom else self.memo)
        search.reserved = need
        strategy = job.strategy if custom else STRATEGIES[job.strategy]
        t = _Task(job, search, strategy(search, job.config), time.perf_counter(), verifier_slots=vneed)
        self.searches.append(t)
        self.tasks.append(t)
        self._resume(t, None)
        return True

    # --- driving generators ---------------------------------------------------------------------
    def _resume(self, t: _Task, answer) -> None:
        """Drive the generator until it pauses on a request it cannot have answered now."""
        while True:
            try:
                request = t.gen.send(answer)
            except StopIteration as stop:
                self._complete(t, stop.value)
                return
            except Exception as e:  # this search fails; the others go on
                self._fail(t, e)
                return
            if isinstance(request, Generate):
                batch = self.engine.begin_step(request.seqs, stop=request.stop, max_tokens=request.max_tokens)
                if batch.done:  # nothing to generate (every sequence had ended)
                    answer = batch.steps()
                    continue
                t.request, t.batch = request, batch
                return
            if isinstance(request, Score):
                t.request = request
                return
            if isinstance(request, AwaitDraws):
                if self.memo is None or self.memo.ready(request.draws):
                    answer = None
                    continue
                t.request = request
                return
            if isinstance(request, Parallel):
                if not request.parts:
                    answer = []
                    continue
                t.request = request
                t.parts = [_Task(t.job, t.search, g, t.started, parent=t, index=i) for i, g in enumerate(request.parts)]
                t.part_results, t.parts_left = [None] * len(t.parts), len(t.parts)
                self.tasks.extend(t.parts)
                for part in list(t.parts):
                    if not part.done and not t.done:
                        self._resume(part, None)
                return
            self._fail(t, TypeError(f"a strategy yielded {request!r}"))
            return

    def _complete(self, t: _Task, value) -> None:
        t.done, t.result, t.request, t.batch = True, value, None, None
        if t.parent is None:
            return
        self.tasks.remove(t)
        p = t.parent
        p.part_results[t.index] = value
        p.parts_left -= 1
        if p.parts_left == 0 and not p.done:
            p.request, p.parts = None, []
            self._resume(p, p.part_results)

    def _fail(self, t: _Task, error: BaseException) -> None:
        for part in t.parts:  # the search's other parts stop too
            if not part.done:
                part.done = True
                part.gen.close()
                self.tasks.remove(part)
        t.done, t.error, t.request, t.batch, t.parts = True, error, None, None, []
        if t.parent is not None:
            self.tasks.remove(t)
            if not t.parent.done:
                t.parent.gen.close()
                self._fail(t.parent, error)

    # --- the two kinds of work ------------------------------------------------------------------
    def _score(self, scoring: list[_Task]) -> None:
        """Every task waiting on the verifier, answered by one merged score call."""
        items = [it for t in scoring for it in t.request.items]
        self.score_calls += 1
        try:
            scores = self.verifier.score(items)
        except Exception as e:  # noqa: BLE001 - a verifier failure fails these searches
            for t in scoring:
                if not t.done:
                    self._fail(t, e)
            return
        k = 0
        for t in scoring:
            n = len(t.request.items)
            mine, k = scores[k:k + n], k + n
            if not t.done:
                t.request = None
                self._resume(t, mine)

    def _wake(self) -> None:
        """Resume the tasks whose awaited shared draws are ready (other searches generated them,
        or gave them up)."""
        for t in [t for t in self.tasks if isinstance(t.request, AwaitDraws)]:
            if not t.done and t.request is not None and self.memo.ready(t.request.draws):
                t.request = None
                self._resume(t, None)

    def _decode(self) -> None:
        """One token for every live sequence of every task, in one llama_decode."""
        stepping = [t for t in self.tasks if t.batch is not None]
        if not stepping:
            raise RuntimeError("the scheduler has searches in flight but nothing to run")
        self.decode_steps += 1
        self.rows_decoded += sum(len(t.batch.live) for t in stepping)
        self.engine.advance([t.batch for t in stepping])
        for t in stepping:
            if not t.done and t.batch is not None and t.batch.done:
                steps = t.batch.steps()
                t.request = t.batch = None
                self._resume(t, steps)

    # --- ending -------------------------------------------------------------------------------------
    def _drop(self, t: _Task) -> None:
        for part in t.parts:
            part.gen.close()
        t.gen.close()
        t.search.close()
        self._compute(t.search.key, 0.0)

    def _finish(self, t: _Task) -> SearchResult | BaseException:
        t.search.close()
        compute = self._compute(t.search.key, time.perf_counter() - t.started)
        if t.error is not None:
            return t.error
        if t.search.shared:
            compute.update(shared_compute(t.search.shared, compute, self.engine.model.n_params))
        t.result.compute = compute
        return t.result

    def _compute(self, key, seconds: float) -> dict:
        """The search's compute, taken out of the engines' per-search counters."""
        policy = self.engine.usage.pop(key, None)
        out: dict = {"policy": policy.as_dict() if policy else {}, "seconds": round(seconds, 3)}
        flops = policy.flops if policy else 0.0
        used = self.verifier.take_usage(key) if self.verifier is not None else None
        if used is not None:
            out["verifier"] = used.as_dict()
            flops += used.flops
        out["flops"] = flops
        return out


def shared_compute(shared, compute: dict, n_params: int) -> dict:
    """What a search that replayed shared draws reports besides its own compute: the draws
    (steps, their tokens, the tokens of them it prefilled to go on from them) and
    `flops_unshared`, its FLOPs had it generated every step itself (each replayed token one
    evaluation, except those it prefilled, already counted). A calibration compares settings
    by these: what each costs run on its own."""
    saved = shared["tokens"] - shared["tokens_caught_up"]
    return {"shared": {"steps": shared["steps"], "tokens": shared["tokens"],
                       "tokens_caught_up": shared["tokens_caught_up"]},
            "flops_unshared": compute["flops"] + 2.0 * n_params * saved}


def run_search(strategy: str, problem: str, engine, verifier, config: SearchConfig,
               on_event: EventHandler | None = None) -> SearchResult:
    """One search: the scheduler with a single job (what `tts solve` runs)."""
    job = Job(problem, strategy, config, on_event=on_event)
    for _, out in Scheduler(engine, verifier).run([job]):
        if isinstance(out, Exception):
            raise out
        return out
    raise RuntimeError("the scheduler returned no result")
