"""The Ray actor that loads the models once and runs the problems it is handed through its own
scheduler."""

from __future__ import annotations

import os
import pickle
import queue
import threading


def _picklable(value):
    if isinstance(value, BaseException):
        try:
            pickle.loads(pickle.dumps(value))
        except Exception:  # noqa: BLE001
            return RuntimeError(f"{type(value).__name__}: {value}")
    return value


class Worker:
    """A Ray actor (made one by RaySolver): loads the policy and verifier once, then runs the
    searches it is handed through its own scheduler, several at once, on a thread of its own.
    where() answers as soon as the actor runs on a node, info() once the models are loaded;
    submit() queues a problem's searches; take() returns the searches that ended."""

    def __init__(self, models, registry: dict, plans: list, concurrency: int | None, verifier: bool = False):
        import ray
        from dataclasses import replace
        self.node = ray.util.get_node_ip_address()
        self.error = None
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        if models.threads is None and not ray.get_gpu_ids():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:  # llama.cpp would take every core of the node; this worker has its share
                models = replace(models, threads=max(1, int(cpus)))
        # Loading may take long (a model missing on this node is pulled first): on a thread, so
        # that the driver learns at once that this worker found a node (it waits only so long for
        # one that has not).
        self.loaded = threading.Event()
        threading.Thread(target=self._serve, args=(models, registry, plans, concurrency, verifier), daemon=True).start()

    def _serve(self, models, registry, plans, concurrency, verifier) -> None:
        from ..solver import Session
        try:
            self.session = Session(models, registry, pull_missing=True)
            self.scheduler = self.session.open(plans, concurrency, verifier)
        except Exception as e:  # noqa: BLE001 - reported by info(), naming this node
            self.error = str(e) or type(e).__name__
            return
        finally:
            self.loaded.set()
        self._run()

    def where(self) -> str:
        """The node this worker runs on (while its models load)."""
        return self.node

    def info(self) -> dict:
        """What the worker loaded, once it has (or why it could not)."""
        self.loaded.wait()
        out = {"node": self.node, "pid": os.getpid(), "error": self.error}
        if self.error is None:
            out.update(self.session.info(), concurrency=self.scheduler.concurrency,
                       slots=self.scheduler.engine.n_seq_max)
        return out

    def submit(self, unit: int, items: list) -> None:
        """items: (index, strategy, config, problem) for one problem's searches."""
        self.inbox.put((unit, items))

    def take(self, timeout: float) -> list:
        """(unit, index, result or exception) of the searches that ended; waits up to `timeout`
        for the first. (None, None, error): this worker is broken."""
        out = []
        try:
            out.append(self.outbox.get(timeout=timeout))
            while True:
                out.append(self.outbox.get_nowait())
        except queue.Empty:
            pass
        return [(u, i, _picklable(r)) for u, i, r in out]

    def _run(self) -> None:
        """Problems become searches of the scheduler as they arrive (`add`); the scheduler steps
        while it has any; an idle worker waits for the next problem."""
        try:
            while True:
                self._take_arrived(wait=self.scheduler.done())
                for job, out in self.scheduler.step():
                    unit, index = job.tag
                    self.outbox.put((unit, index, self.session.finished(job, out)))
        except BaseException as e:  # noqa: BLE001 - the driver stops the run with it
            self.outbox.put((None, None, RuntimeError(f"{type(e).__name__}: {e}")))

    def _take_arrived(self, wait: bool) -> None:
        """Every problem handed in so far, added to the scheduler; with `wait`, at least one."""
        try:
            unit, items = self.inbox.get(block=wait)
            while True:
                for index, strategy, cfg, problem in items:
                    self.scheduler.add(self.session.job((unit, index), problem, strategy, cfg))
                unit, items = self.inbox.get_nowait()
        except queue.Empty:
            pass
