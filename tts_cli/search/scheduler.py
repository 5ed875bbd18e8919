"""Many searches on one policy engine and one verifier, interleaved at the token level.

A strategy is a generator that pauses on a request (`Generate`: the next step of some
sequences; `Score`: verifier scores for some steps). The scheduler keeps K searches in flight
and answers their requests together:

- every llama_decode holds the next token of every live sequence of every search (continuous
  batching); a search whose step has ended for all its sequences resumes at once, and the
  sequences it then asks to step join the next decode. No search waits for another's step;
- the verifier requests of all searches waiting on one are answered in one `score` call;
- a new search is admitted when the sequence slots it may hold at once fit beside those of the
  searches in flight (`slots_needed`); one that could never fit is refused with a clear error;
- each search's compute is what the engines counted for its key (a shared decode is split by
  rows), so the searches' compute adds up to the engines' totals.

`tts solve` is this with one search.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..engine import EngineError, StepBatch
from .common import Search
from .types import ConfigError, EventHandler, Generate, Score, SearchConfig, SearchResult

_keys = itertools.count(1)  # search keys, unique in the process (engines may outlive a scheduler)


@dataclass
class Job:
    """One search to run: a problem, a strategy and its configuration. `tag` is the caller's."""

    problem: str
    strategy: str
    config: SearchConfig
    tag: Any = None
    on_event: EventHandler | None = None


def slots_needed(strategy: str, config: SearchConfig) -> int:
    """Policy sequences a search may hold at once: its N paths (one for CoT), and as many
    lookahead rollouts again in beam search (auto may choose beam)."""
    if strategy == "cot":
        return 1
    return config.n * (2 if config.lookahead and strategy in ("beam", "auto") else 1)


def verifier_slots_needed(strategy: str, config: SearchConfig) -> int:
    """Verifier sequences a search may hold: a prefix, each scored node until its children are
    scored (2N), lookahead rollouts (N), and a throwaway query fork each."""
    if strategy in ("cot", "majority"):
        return 0
    return 1 + config.n * (3 if config.lookahead else 2) + config.n


@dataclass(eq=False)
class _Flight:
    job: Job
    search: Search
    gen: Iterator
    started: float
    request: Any = None
    batch: StepBatch | None = None
    slots: int = 0
    verifier_slots: int = 0
    done: bool = False
    result: SearchResult | None = None
    error: Exception | None = None
    answers: list = field(default_factory=list)


class Scheduler:
    def __init__(self, engine, verifier=None, *, max_searches: int = 1):
        self.engine = engine
        self.verifier = verifier
        self.max_searches = max(1, max_searches)
        self.verifier_capacity = getattr(getattr(verifier, "engine", None), "n_seq_max", None)
        self.peak_searches = 0
        self.in_flight = 0  # searches running now (for progress displays)
        self.score_calls = 0

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, SearchResult | Exception]]:
        """Run the jobs, up to max_searches at once; yield (job, result) as each search ends, in
        the order they end. A search that fails yields (job, exception) and frees what it held;
        the others go on."""
        from . import NEEDS_VERIFIER, STRATEGIES

        queue = iter(jobs)
        waiting: Job | None = None
        flights: list[_Flight] = []
        ended: list[_Flight] = []

        def resume(f: _Flight, answer) -> None:
            """Run the search until it pauses on a request it cannot have answered at once."""
            while True:
                try:
                    request = f.gen.send(answer)
                except StopIteration as stop:
                    f.done, f.result = True, stop.value
                    return
                except Exception as e:  # this search fails; the others go on
                    f.done, f.error = True, e
                    return
                if isinstance(request, Generate):
                    batch = self.engine.begin_step(request.seqs, stop=request.stop, max_tokens=request.max_tokens)
                    if batch.done:  # nothing to generate (every sequence had ended)
                        answer = batch.steps()
                        continue
                    f.request, f.batch = request, batch
                    return
                if isinstance(request, Score):
                    f.request, f.batch = request, None
                    return
                f.done, f.error = True, TypeError(f"a strategy yielded {request!r}")
                return

        def finish(f: _Flight) -> None:
            f.search.close()
            if f.result is not None:
                f.result.compute = self._compute(f.search.key, time.perf_counter() - f.started)
            else:
                self._compute(f.search.key, 0.0)  # drop its counters
            ended.append(f)

        def admit(job: Job) -> _Flight | None:
            """Start the job if its sequences fit now; a job that can never fit fails."""
            if job.strategy not in STRATEGIES:
                raise ConfigError(f"unknown strategy {job.strategy!r}; choose from {', '.join(STRATEGIES)}")
            if job.strategy in NEEDS_VERIFIER and self.verifier is None:
                raise ConfigError(f"{job.strategy} needs a verifier (--prm)")
            need = slots_needed(job.strategy, job.config)
            vneed = verifier_slots_needed(job.strategy, job.config) if self.verifier is not None else 0
            vcap = self.verifier_capacity
            if need > self.engine.n_seq_max:
                raise EngineError(f"{job.strategy} with N={job.config.n} needs {need} sequences at once; the "
                                  f"engine has {self.engine.n_seq_max} (open it for this budget)")
            used = sum(x.slots for x in flights)
            vused = sum(x.verifier_slots for x in flights)
            if flights and (used + need > self.engine.n_seq_max or
                            (vcap is not None and vused + min(vneed, vcap) > vcap)):
                return None
            search = Search(job.problem, self.engine, self.verifier, key=next(_keys), on_event=job.on_event)
            f = _Flight(job, search, STRATEGIES[job.strategy](search, job.config), time.perf_counter(),
                        slots=need, verifier_slots=min(vneed, vcap or vneed))
            flights.append(f)
            resume(f, None)
            return f

        try:
            while True:
                # 1. admit new searches while they fit
                while len(flights) < self.max_searches:
                    if waiting is None:
                        waiting = next(queue, None)
                        if waiting is None:
                            break
                    try:
                        if admit(waiting) is None:
                            break
                    except (ConfigError, EngineError) as e:
                        yield waiting, e
                    waiting = None
                self.peak_searches = max(self.peak_searches, len(flights))
                self.in_flight = len(flights)
                # 2. hand back the searches that ended
                for f in [f for f in flights if f.done]:
                    flights.remove(f)
                    finish(f)
                while ended:
                    f = ended.pop(0)
                    yield f.job, (f.result if f.error is None else f.error)
                if not flights:
                    if waiting is None:
                        waiting = next(queue, None)
                        if waiting is None:
                            return
                    continue
                # 3. every search waiting on the verifier: one merged score call
                scoring = [f for f in flights if isinstance(f.request, Score)]
                if scoring:
                    items = [it for f in scoring for it in f.request.items]
                    self.score_calls += 1
                    try:
                        scores = self.verifier.score(items)
                    except Exception as e:  # noqa: BLE001 - a verifier failure fails these searches
                        for f in scoring:
                            f.done, f.error = True, e
                        continue
                    k = 0
                    for f in scoring:
                        n = len(f.request.items)
                        mine, k = scores[k:k + n], k + n
                        f.request = None
                        resume(f, mine)
                    continue
                # 4. one token for every live sequence of every search
                stepping = [f for f in flights if f.batch is not None]
                self.engine.advance([f.batch for f in stepping])
                for f in stepping:
                    if f.batch.done:
                        steps = f.batch.steps()
                        f.request = f.batch = None
                        resume(f, steps)
        finally:
            for f in flights:  # interrupted (Ctrl-C) or failed: free everything still held
                f.gen.close()
                f.search.close()
                self._compute(f.search.key, 0.0)

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
