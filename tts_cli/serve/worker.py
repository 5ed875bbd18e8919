"""The one thread that runs llama.cpp.

llama.cpp contexts are not thread-safe, so one thread owns the engines and their scheduler, and
every search of every request is a job of that scheduler: each llama_decode holds the next token
of every live sequence of every client's search (continuous batching), and the verifier requests
of all searches waiting on it are one call. The thread loops:

    take what the inbox holds (jobs to add, jobs to cancel, functions to run between steps;
    waiting on it when the scheduler has nothing to do) -> scheduler.step() -> hand each ended
    search's result back to the event loop of the request that asked for it.

The asyncio side never touches the scheduler: it puts commands in the inbox and hears back
through `loop.call_soon_threadsafe` (a Ticket's futures).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..search import Job, Scheduler
from .errors import SearchCancelled, ServerStopping

log = logging.getLogger("tts_cli.serve")


@dataclass(eq=False)
class Ticket:
    """One request's search, between the event loop and the worker. Both futures belong to the
    request's loop and are set there: `started` when the scheduler starts the search (it leaves
    the queue), `outcome` with its SearchResult or exception. `left_queue` is set on the worker
    thread the moment the search leaves the queue, a loop turn before `started` is: what the
    queue's length (admission, /health) counts, so a request arriving in that turn is not turned
    away by a search that has already started."""

    job: Job
    loop: asyncio.AbstractEventLoop
    started: asyncio.Future = field(init=False)
    outcome: asyncio.Future = field(init=False)
    left_queue: bool = field(init=False, default=False)

    def __post_init__(self):
        self.started = self.loop.create_future()
        self.outcome = self.loop.create_future()

    def _set(self, future: asyncio.Future, value) -> None:  # on the loop
        if not future.done():
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

    def resolve(self, which: str, value=None) -> None:
        """Set a future from the worker thread (a closed loop means nobody waits any more)."""
        if which == "started":
            self.left_queue = True  # a bool's assignment is atomic: the loop sees it at once
        try:
            self.loop.call_soon_threadsafe(self._set, getattr(self, which), value)
        except RuntimeError:
            pass


class SearchWorker:
    """Drives `scheduler` on a thread of its own; `close()` frees the engines when it ends (on
    that thread too)."""

    def __init__(self, scheduler: Scheduler, close: Callable[[], None]):
        self.scheduler = scheduler
        self._close = close
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.tickets: set[Ticket] = set()  # added, not yet handed back
        self._not_started: list[Ticket] = []
        self.failure: BaseException | None = None  # a bug that stopped the thread
        self.stopping = False
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="tts-search", daemon=True)

    # --- the asyncio side's verbs (thread-safe) ---------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, ticket: Ticket) -> None:
        self.inbox.put(("add", ticket))

    def cancel(self, ticket: Ticket) -> None:
        self.inbox.put(("cancel", ticket))

    def call(self, fn: Callable) -> concurrent.futures.Future:
        """fn() run on the worker thread between two steps (reading the engines' counters)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if not self.thread.is_alive():
            future.set_exception(ServerStopping("the search thread has stopped"))
        else:
            self.inbox.put(("call", (fn, future)))
        return future

    def stop(self) -> None:
        """Cancel every search and end the thread (it closes the engines)."""
        self.stopping = True
        self.inbox.put(("stop", None))

    def join(self, timeout: float | None = None) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)

    # --- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while self._take_commands(block=self.scheduler.done()):
                if not self.scheduler.done():
                    for job, out in self.scheduler.step():
                        self._hand_back(job.tag, out)
                self._note_started()
        except BaseException as e:  # a bug in tts: every request waiting gets a 500, logged here
            self.failure = e
            log.error("the search thread stopped on an internal error (a bug in tts_cli, please report it)",
                      exc_info=e)
            for ticket in list(self.tickets):
                self._hand_back(ticket, e)
        finally:
            self.stopping = True
            try:
                self.scheduler.close()
            finally:
                self._close()
                self._fail_calls()

    def _take_commands(self, block: bool) -> bool:
        """Apply every command in the inbox (waiting for one when `block`); False on stop."""
        command = self.inbox.get() if block else self._next()
        while command is not None:
            verb, arg = command
            if verb == "add":
                self.tickets.add(arg)
                self._not_started.append(arg)
                self.scheduler.add(arg.job)
            elif verb == "cancel":
                if arg in self.tickets and self.scheduler.cancel(arg.job):
                    self._hand_back(arg, SearchCancelled("the client went away"))
            elif verb == "call":
                fn, future = arg
                try:
                    future.set_result(fn())
                except Exception as e:  # noqa: BLE001 - the caller gets it
                    future.set_exception(e)
            elif verb == "stop":
                for ticket in list(self.tickets):
                    self.scheduler.cancel(ticket.job)
                    self._hand_back(ticket, ServerStopping("the server is shutting down"))
                return False
            command = self._next()
        return True

    def _next(self):
        try:
            return self.inbox.get_nowait()
        except queue.Empty:
            return None

    def _hand_back(self, ticket: Ticket, out) -> None:
        self.tickets.discard(ticket)
        ticket.resolve("started")
        ticket.resolve("outcome", out)

    def _note_started(self) -> None:
        """Tell the requests whose searches left the scheduler's queue (the queue's length is
        what a new request is admitted against)."""
        if not self._not_started:
            return
        waiting = {id(job) for job in self.scheduler.waiting}
        still = []
        for ticket in self._not_started:
            if id(ticket.job) in waiting and ticket in self.tickets:
                still.append(ticket)
            else:
                ticket.resolve("started")
        self._not_started = still

    def _fail_calls(self) -> None:
        """Calls left in the inbox after the thread ended get an error, not a wait forever."""
        while (command := self._next()) is not None:
            verb, arg = command
            if verb == "call":
                arg[1].set_exception(ServerStopping("the search thread has stopped"))
            elif verb == "add":
                arg.resolve("started")
                arg.resolve("outcome", ServerStopping("the server is shutting down"))
