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

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..engine import EngineError, StepBatch
from .common import Search
from .strategies import STRATEGIES
from .types import NEEDS_VERIFIER, ConfigError, EventHandler, Generate, Parallel, Score, SearchConfig, SearchResult

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


def slots_needed(strategy: str, config: SearchConfig) -> int:
    """Policy sequences a search may hold at once: its N paths (one for CoT), and as many
    lookahead rollouts again in beam search (auto may choose beam)."""
    if strategy == "cot":
        return 1
    return config.n * (2 if config.lookahead and strategy in ("beam", "auto") else 1)


def verifier_slots_needed(strategy: str, config: SearchConfig) -> int:
    """Verifier sequences a search may hold: a prefix, each scored node until its children are
    scored (2N), lookahead rollouts (N), and a throwaway query fork each."""
    if strategy in ("cot", "majority", "majority-adaptive", "deepconf"):
        return 0
    return 1 + config.n * (3 if config.lookahead else 2) + config.n


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
    """max_searches: searches in flight at most (besides the slots, which always limit)."""

    def __init__(self, engine, verifier=None, *, max_searches: int = 1):
        self.engine = engine
        self.verifier = verifier
        self.max_searches = max(1, max_searches)
        self.concurrency = self.max_searches  # what the engine was sized for (the CLI says it)
        self.verifier_capacity = getattr(getattr(verifier, "engine", None), "n_seq_max", None)
        self.peak_searches = 0
        self.in_flight = 0  # searches running now, kept as they start and end (progress, feeders)
        self.decode_steps = 0  # token-level llama_decode calls made for generation
        self.rows_decoded = 0  # sequences in them, summed
        self.score_calls = 0

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, SearchResult | Exception]]:
        """Run the jobs, up to max_searches at once; yield (job, result) as each search ends, in
        the order they end. A search that fails yields (job, exception) and frees what it held;
        the others go on.

        `jobs` may yield None: nothing to start yet (a feeder whose next problem has not
        arrived, as on a Ray worker). The searches in flight go on and the scheduler asks again
        after their next step; a feeder should block instead while `in_flight` is 0."""
        queue = iter(jobs)
        waiting: Job | None = None
        searches: list[_Task] = []  # whole searches in flight
        tasks: list[_Task] = []  # everything being driven: searches and their parts

        def resume(t: _Task, answer) -> None:
            """Drive the generator until it pauses on a request it cannot have answered now."""
            while True:
                try:
                    request = t.gen.send(answer)
                except StopIteration as stop:
                    complete(t, stop.value)
                    return
                except Exception as e:  # this search fails; the others go on
                    fail(t, e)
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
                if isinstance(request, Parallel):
                    if not request.parts:
                        answer = []
                        continue
                    t.request = request
                    t.parts = [_Task(t.job, t.search, g, t.started, parent=t, index=i)
                               for i, g in enumerate(request.parts)]
                    t.part_results, t.parts_left = [None] * len(t.parts), len(t.parts)
                    tasks.extend(t.parts)
                    for part in list(t.parts):
                        if not part.done and not t.done:
                            resume(part, None)
                    return
                fail(t, TypeError(f"a strategy yielded {request!r}"))
                return

        def complete(t: _Task, value) -> None:
            t.done, t.result, t.request, t.batch = True, value, None, None
            if t.parent is None:
                return
            tasks.remove(t)
            p = t.parent
            p.part_results[t.index] = value
            p.parts_left -= 1
            if p.parts_left == 0 and not p.done:
                p.request, p.parts = None, []
                resume(p, p.part_results)

        def fail(t: _Task, error: BaseException) -> None:
            for part in t.parts:  # the search's other parts stop too
                if not part.done:
                    part.done = True
                    part.gen.close()
                    tasks.remove(part)
            t.done, t.error, t.request, t.batch, t.parts = True, error, None, None, []
            if t.parent is not None:
                tasks.remove(t)
                if not t.parent.done:
                    t.parent.gen.close()
                    fail(t.parent, error)

        def admit(job: Job) -> bool:
            """Start the job if its sequences fit now; a job that can never fit fails."""
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
            if searches and (sum(x.search.reserved for x in searches) + need > capacity or
                             (vcap and sum(x.verifier_slots for x in searches) + vneed > vcap)):
                return False
            search = Search(job.problem, self.engine, self.verifier, key=next(_keys), on_event=job.on_event)
            search.reserved = need
            strategy = job.strategy if custom else STRATEGIES[job.strategy]
            t = _Task(job, search, strategy(search, job.config), time.perf_counter(),
                      verifier_slots=vneed)
            searches.append(t)
            tasks.append(t)
            self.in_flight = len(searches)
            resume(t, None)
            return True

        try:
            while True:
                # 1. admit new searches while they fit
                while len(searches) < self.max_searches:
                    if waiting is None:
                        waiting = next(queue, None)
                        if waiting is None:
                            break
                    try:
                        if not admit(waiting):
                            break
                    except (ConfigError, EngineError) as e:
                        yield waiting, e
                    waiting = None
                self.peak_searches = max(self.peak_searches, len(searches))
                # 2. hand back the searches that ended
                for t in [t for t in searches if t.done]:
                    searches.remove(t)
                    tasks.remove(t)
                    self.in_flight = len(searches)
                    yield t.job, self._finish(t)
                if not searches:
                    if waiting is None and (waiting := next(queue, None)) is None:
                        return
                    continue
                # 3. every task waiting on the verifier: one merged score call
                scoring = [t for t in tasks if isinstance(t.request, Score)]
                if scoring:
                    items = [it for t in scoring for it in t.request.items]
                    self.score_calls += 1
                    try:
                        scores = self.verifier.score(items)
                    except Exception as e:  # noqa: BLE001 - a verifier failure fails these searches
                        for t in scoring:
                            if not t.done:
                                fail(t, e)
                        continue
                    k = 0
                    for t in scoring:
                        n = len(t.request.items)
                        mine, k = scores[k:k + n], k + n
                        if not t.done:
                            t.request = None
                            resume(t, mine)
                    continue
                # 4. one token for every live sequence of every task
                stepping = [t for t in tasks if t.batch is not None]
                if not stepping:
                    raise RuntimeError("the scheduler has searches in flight but nothing to run")
                self.decode_steps += 1
                self.rows_decoded += sum(len(t.batch.live) for t in stepping)
                self.engine.advance([t.batch for t in stepping])
                for t in stepping:
                    if not t.done and t.batch is not None and t.batch.done:
                        steps = t.batch.steps()
                        t.request = t.batch = None
                        resume(t, steps)
        finally:
            for t in searches:  # interrupted (Ctrl-C) or failed: free everything still held
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
        t.result.compute = compute
        return t.result

    def _compute(self, key, seconds: float) -> dict:
        """The search's compute, taken out of the engines' per-search counters."""
        policy = self.engine.usage.pop(key, None)
        out: dict = {"policy": policy.as_dict() if policy else {}, "seconds": round(seconds, 3)}
        flops = policy.flops if policy else 0.0
        v_engine = getattr(self.verifier, "engine", None)
        if v_engine is not None:
            used = v_engine.usage.pop(key, None)
            if used is not None:
                out["verifier"] = used.as_dict()
                flops += used.flops
        out["flops"] = flops
        return out


def run_search(strategy: str, problem: str, engine, verifier, config: SearchConfig,
               on_event: EventHandler | None = None) -> SearchResult:
    """One search: the scheduler with a single job (what `tts solve` runs)."""
    job = Job(problem, strategy, config, on_event=on_event)
    for _, out in Scheduler(engine, verifier).run([job]):
        if isinstance(out, Exception):
            raise out
        return out
    raise RuntimeError("the scheduler returned no result")
