"""What the routes call: a request's search handed to the search thread, waited on (and
cancelled when its client goes away), within the server's limits; the server's counters.

Everything here runs on the event loop; the scheduler and the engines belong to the worker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from ..engine import PromptTooLong
from ..search import Job, SearchResult
from ..settings import RunSettings
from .errors import REQUEST_FAULTS, APIError, SearchCancelled, ServerStopping, bad_request
from .metrics import Metrics, engine_snapshot, exposition
from .requests import Planner, SearchPlan
from .settings import ServeSettings
from .worker import SearchWorker, Ticket

log = logging.getLogger("tts_cli.serve")
DISCONNECT_POLL_S = 0.25  # how often a waiting request checks that its client is still there
COUNTERS_TIMEOUT_S = 60  # the search thread answers between two steps; a step is not this long


def _is_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.endswith(".gguf")


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


class SearchService:
    """One server's searches: `submit` (a plan -> a Ticket, or 429 when the queue is full),
    `result` (wait for it), `cancel`; `health` and `metrics_text` for the routes of the same
    names. `session` and `scheduler` come from Session.open; the worker owns the scheduler
    from `start()` on."""

    def __init__(self, session, scheduler, defaults: RunSettings, limits: ServeSettings):
        self.session = session
        self.defaults = defaults
        self.limits = limits
        self.scheduler = scheduler
        self.worker = SearchWorker(scheduler, lambda: session.close(scheduler))
        verifier = session.prm if scheduler.verifier is not None else None
        # the policy by its file's stem, and by the registry name it was given as (not a path)
        names = [session.policy_path.stem] + [p for p in [defaults.models.policy] if p and not _is_path(p)]
        self.planner = Planner(defaults, limits, policy_names=names,
                               verifier=verifier, verifier_names=(session.verifier_name(),) if verifier else (),
                               engine_slots=scheduler.engine.n_seq_max)
        self.metrics = Metrics()
        self.pending: set[Ticket] = set()  # submitted, not yet ended

    # --- life -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        """Cancel every search (their requests are answered 503 at once) and let the search
        thread close the engines. Safe to call more than once, from a signal handler too."""
        if not self.worker.stopping:
            self.worker.stop()

    def close(self, timeout: float = 30) -> None:
        self.stop()
        self.worker.join(timeout)

    # --- searches ---------------------------------------------------------------------------------
    def queued(self) -> int:
        """Requests accepted whose searches have not started (no room in the engine yet)."""
        return sum(1 for t in self.pending if not t.left_queue)

    def submit(self, plan: SearchPlan, on_event=None) -> Ticket:
        if self.worker.failure is not None or self.worker.stopping:
            raise APIError(503, "the server is shutting down" if self.worker.failure is None else
                           "the search thread stopped on an internal error; see the server's log",
                           code="server_unavailable")
        if self.queued() >= self.limits.queue_size:
            self.metrics.searches["rejected"] += 1
            raise APIError(429, f"the server's queue is full ({self.limits.queue_size} requests waiting for room); "
                                "retry later", code="rate_limit_exceeded",
                           headers={"Retry-After": str(self.metrics.retry_after())})
        config = self.session.prepare(plan.strategy, plan.config)  # auto: the profile saved for these models
        ticket = Ticket(Job(plan.problem, plan.strategy, config, on_event=on_event), asyncio.get_running_loop())
        ticket.job.tag = ticket
        self.pending.add(ticket)
        ticket.outcome.add_done_callback(lambda _: self._ended(ticket))
        self.worker.submit(ticket)
        return ticket

    def _ended(self, ticket: Ticket) -> None:
        self.pending.discard(ticket)
        error = ticket.outcome.exception()  # (retrieved, so asyncio does not warn about it)
        kind = "completed" if error is None else \
            "cancelled" if isinstance(error, (SearchCancelled, ServerStopping)) else "failed"
        self.metrics.searches[kind] += 1

    def cancel(self, ticket: Ticket) -> None:
        """Stop the search at the next step, freeing its sequences (no-op once it has ended)."""
        if not ticket.outcome.done():
            self.worker.cancel(ticket)

    async def result(self, ticket: Ticket, plan: SearchPlan,
                     is_disconnected: Callable[[], Awaitable[bool]]) -> SearchResult:
        """Wait for the search; a client that goes away has its search cancelled (ClientGone)."""
        while not ticket.outcome.done():
            await asyncio.wait({ticket.outcome}, timeout=DISCONNECT_POLL_S)
            if not ticket.outcome.done() and await is_disconnected():
                self.cancel(ticket)
                raise ClientGone()
        return self.finished(ticket, plan)

    def finished(self, ticket: Ticket, plan: SearchPlan) -> SearchResult:
        """An ended search's result, or the APIError its failure is: what the request asked for
        (400), the server stopping (503), or a bug (500, logged with its traceback)."""
        error = ticket.outcome.exception()
        if error is None:
            result = ticket.outcome.result()
            result.config = {**self.session.describe(plan.strategy), **result.config}
            result.notes = plan.notes + result.notes
            return result
        if isinstance(error, REQUEST_FAULTS):
            raise bad_request(str(error), code="context_length_exceeded" if isinstance(error, PromptTooLong) else None)
        if isinstance(error, (SearchCancelled, ServerStopping)):
            raise APIError(503, str(error), code="server_unavailable")
        log.error("a search failed on an internal error (a bug in tts_cli, please report it)", exc_info=error)
        raise APIError(500, f"internal error ({type(error).__name__}); the server's log has the traceback")

    # --- what the server reports ------------------------------------------------------------------
    async def engine_counters(self) -> dict | None:
        """The engines' counters, read on the search thread between two steps (None once it has
        stopped)."""
        try:
            future = self.worker.call(lambda: engine_snapshot(self.scheduler))
            return await asyncio.wait_for(asyncio.wrap_future(future), COUNTERS_TIMEOUT_S)
        except (ServerStopping, asyncio.TimeoutError):
            return None

    async def health(self) -> dict:
        counters = await self.engine_counters()
        status = "failed" if self.worker.failure else "stopping" if self.worker.stopping else "ok"
        out = {"status": status, "policy": self.session.policy_path.name, "verifier": self.planner.verifier,
               "strategy": self.defaults.strategy, "n": self.defaults.search.n, "searches_queued": self.queued(),
               "uptime_s": round(time.monotonic() - self.worker.started_at, 1)}
        if counters is not None:
            out.update(searches_in_flight=counters["searches_in_flight"], sequence_slots=counters["sequence_slots"],
                       live_sequences={m: s["live_sequences"] for m, s in counters["models"].items()})
        return out

    async def metrics_text(self) -> str | None:
        counters = await self.engine_counters()
        return None if counters is None else exposition(self.metrics, counters, self.queued())
