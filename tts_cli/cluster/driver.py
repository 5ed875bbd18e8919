"""RaySolver: the batch commands' searches on Ray workers, from one queue, with faults handled."""

from __future__ import annotations

import collections
import itertools
import os
import time
from dataclasses import dataclass, field

from ..results import ProblemFailed
from ..cli_options import LOCAL
from .connect import ClusterError, _abandon, _answers, _first_line, connect
from .worker import Worker

MAX_TRIES = 3  # a problem on a worker that died is tried this many times in all
POLL_SECONDS = 0.5  # how long a worker's take() waits for a finished search
# How long the run waits for the cluster to host a worker when none is running and no replacement
# has been placed on a node (every node gone, or none with room) before it stops, keeping what
# finished; also how long a worker may wait for room when the run starts.
NO_WORKER_SECONDS = float(os.environ.get("TTS_RAY_NO_WORKER_SECONDS", "60"))
# How long the run waits for the GCS, or the raylet the driver is attached to, once it stopped
# answering (a GCS may be restarting, with GCS fault tolerance) before it stops. Ray ends a driver
# whose GCS has been gone for 60 s (gcs_rpc_server_reconnect_timeout_s) with a log line and exit
# 1: this must come well before.
SILENT_SECONDS = 10.0
KNOCK_SECONDS = 2.0  # how often the driver knocks on their ports
STARTUP_CALL_SECONDS = 60.0  # the most a start-up question to the GCS may take


def within(seconds: float, call, what: str):
    """call() on a daemon thread, its result if it returns within `seconds`, else a ClusterError
    (the thread is left to Ray: it ends when its call does)."""
    import threading
    out: dict = {}

    def run():
        try:
            out["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            out["error"] = e
    worker = threading.Thread(target=run, daemon=True, name="tts-ray-call")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise ClusterError(f"the Ray cluster did not say {what} within {seconds:.0f} s: its head node may be gone; "
                           "the finished problems are kept")
    if "error" in out:
        raise out["error"]
    return out["value"]


@dataclass
class _Unit:
    """One problem's searches, handed out together (they share the problem's prompt)."""
    id: int
    items: list  # (key, problem, strategy, config)
    left: set  # indices not finished yet
    tries: int = 0


@dataclass(eq=False)
class _Handle:
    actor: object
    name: str
    node: str = "?"
    placed: bool = False  # running on a node (its models may still be loading)
    ready: bool = False  # models loaded: takes problems
    since: float = field(default_factory=time.monotonic)  # when it was started
    concurrency: int = 1
    info: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)  # id -> _Unit held by this worker
    solo: bool = False  # running a retried problem alone

    def load(self) -> int:
        return sum(len(u.left) for u in self.units.values())


class RaySolver:
    """The batch commands' searches on Ray workers; the same face as solver.LocalSolver.

    The driver waits on one call of each worker at a time (`waiting`): where() until it is placed
    on a node, info() until its models are loaded, then, while solve_many runs, take()."""

    def __init__(self, address: str, models, plans: list, concurrency: int | None,
                 workers: int | None = None, on_status=None, worker_class: type = None, registry: dict | None = None,
                 verifier: bool = False):
        from ..registry import load_registry
        t0 = time.perf_counter()
        # what close() needs, whenever this stops (Ctrl-C and SIGTERM included)
        self.ray, self.local, self.workers = None, address == LOCAL, []
        self.waiting: dict = {}  # ObjectRef -> (worker, "where", "info" or "take")
        self.vital: dict = {}  # "gcs" and "raylet" (the one this driver is attached to) -> HOST:PORT
        self.knocked, self.silent_since = 0.0, {}  # the last knock; what stopped answering when
        self.asked = concurrency
        self.on_status = on_status
        if registry is None:
            registry = load_registry(models.models_file)  # the driver's names, shipped to workers
        try:
            self.ray = ray = connect(address)
            self.connect_seconds = time.perf_counter() - t0
            context = ray.get_runtime_context()
            self.vital["gcs"] = context.gcs_address
            # two GCS calls with no time limit of their own: bounded here, so a head node that
            # dies between connecting and these cannot hang the start
            resources = within(STARTUP_CALL_SECONDS, ray.cluster_resources, "the cluster's resources")
            gpus = int(resources.get("GPU", 0))
            alive = [n for n in within(STARTUP_CALL_SECONDS, ray.nodes, "the cluster's nodes") if n.get("Alive")]
            nodes = len(alive)
            for n in alive:
                if n["NodeID"] == context.get_node_id():
                    self.vital["raylet"] = f"{n['NodeManagerAddress']}:{n['NodeManagerPort']}"
            count = workers or gpus or nodes
            cpus = int(resources.get("CPU", 1))
            if gpus:
                options = {"num_gpus": 1, "num_cpus": 0}
                self.needs = "1 GPU"
                if count > gpus:
                    raise ClusterError(f"--workers {count}: the cluster has {gpus} GPUs (one worker per GPU)")
            else:
                if count > cpus:
                    raise ClusterError(f"--workers {count}: the cluster has {cpus} CPUs")
                # an equal share of the cluster's CPUs, but no more than one node has
                biggest = max(int(n.get("Resources", {}).get("CPU", 0)) for n in alive)
                options = {"num_cpus": max(1, min(cpus // count, biggest))}
                self.needs = f"{options['num_cpus']} CPU{'s' if options['num_cpus'] > 1 else ''}"
            self._actor_class = ray.remote(worker_class or Worker).options(max_concurrency=4, max_restarts=0, **options)
            self._args = (models, registry, plans, concurrency, verifier)
            self._names = (f"w{i}" for i in itertools.count(1))
            self.replacements_left = MAX_TRIES * count
            self.workers = [self._start() for _ in range(count)]
            self._until_ready()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.perf_counter() - t0
        self.info_ = self.workers[0].info

    def _start(self) -> _Handle:
        w = _Handle(self._actor_class.remote(*self._args), next(self._names))
        self.waiting[w.actor.where.remote()] = (w, "where")
        return w

    def _until_ready(self) -> None:
        """Wait for every worker to load its models: as long as that takes, but not for ever for a
        node with room, nor on a cluster that stopped answering."""
        from ray.exceptions import RayActorError
        while not all(w.ready for w in self.workers):
            self._check_cluster()
            for w in self.workers:
                if not w.placed and time.monotonic() - w.since > NO_WORKER_SECONDS:
                    raise ClusterError(f"worker {w.name} found no node with room for {NO_WORKER_SECONDS:.0f} s "
                                       f"(each worker needs {self.needs}; other work may hold them)")
            for ref in self._wait():
                w, kind = self.waiting.pop(ref)
                try:
                    self._advance(w, kind, self.ray.get(ref))
                except RayActorError as e:  # e.g. tts_cli not installed on a node
                    raise ClusterError(f"a worker could not start: {_first_line(e)}")

    def _advance(self, w: _Handle, kind: str, value) -> None:
        """A worker's where() or info() answered: wait on its next step."""
        if kind == "where":
            w.placed, w.node = True, value
            self.waiting[w.actor.info.remote()] = (w, "info")
            return
        w.node, w.info = value["node"], value
        if value["error"]:
            raise ClusterError(f"worker {w.name} on node {value['node']}: {value['error']}")
        w.ready, w.concurrency = True, value["concurrency"]

    def _poll(self, w: _Handle) -> None:
        """Wait on the searches a ready worker finishes next."""
        self.waiting[w.actor.take.remote(POLL_SECONDS)] = (w, "take")

    def _wait(self) -> list:
        """The calls that answered; waits a second at most for the first (ray.wait also fetches
        their values to this process, so the ray.get that follows does not wait)."""
        if not self.waiting:
            return []
        ready, _ = self.ray.wait(list(self.waiting), num_returns=1, timeout=1.0)
        return ready

    def _check_cluster(self, at_once: bool = False) -> None:
        """Stop the run once the GCS, or the raylet this driver is attached to, has not answered
        for SILENT_SECONDS (they are knocked on every KNOCK_SECONDS); `at_once`: knock now, and
        stop if either does not answer."""
        now = time.monotonic()
        if not at_once and now - self.knocked < KNOCK_SECONDS:
            return
        self.knocked = now
        for what, address in self.vital.items():
            if _answers(address):
                self.silent_since.pop(what, None)
                continue
            silent = now - self.silent_since.setdefault(what, now)
            if silent < SILENT_SECONDS and not at_once:
                continue
            how = f"has not answered for {silent:.0f} s" if silent >= 1 else "does not answer"
            if what == "gcs":
                gone = "the local Ray instance is gone" if self.local else "the Ray cluster's head node is gone"
                raise ClusterError(f"{gone}: its GCS at {address} {how}; the finished problems are kept")
            raise ClusterError(f"the Ray node this driver is attached to is gone: its raylet at {address} {how}, "
                               "and Ray stops the run's workers with it; the finished problems are kept")

    def describe(self) -> str:
        nodes = sorted({w.node for w in self.workers})
        where = "a local Ray instance" if self.local else "the Ray cluster"
        return (f"ray: {len(self.workers)} workers on {where} (nodes {', '.join(nodes)}), concurrency "
                f"{self.workers[0].concurrency}{' (auto)' if self.asked is None else ''} each; "
                f"started in {self.startup_seconds:.1f} s (Ray {self.connect_seconds:.1f} s, workers "
                f"loading models {self.startup_seconds - self.connect_seconds:.1f} s)")

    def info(self) -> dict:
        return self.info_

    @property
    def in_flight(self) -> str:
        """Problems held by each worker."""
        return " ".join(f"{w.name}:{len(w.units) if w.ready else 'starting'}" for w in self.workers)

    def solve_many(self, pairs, job_for):
        """Run (key, problem) pairs on the workers; yield ((key, problem), result or exception)
        as each search ends. job_for(key) gives (strategy, config)."""
        from ray.exceptions import RayActorError
        ids = itertools.count()
        fresh = (_Unit(next(ids), [(k, p, *job_for(k)) for k, p in group], set())
                 for _, group in itertools.groupby(pairs, key=lambda kp: (kp[1].id, kp[1].line)))
        retry: collections.deque = collections.deque()
        for w in self.workers:
            self._poll(w)
        exhausted = False

        def hand_out(w: _Handle):
            nonlocal exhausted
            if not w.ready or w.solo:
                return
            while w.load() < w.concurrency + 1:
                if not w.units and retry:
                    self._submit(w, retry.popleft())
                    w.solo = True
                    return
                u = None if exhausted else next(fresh, None)
                if u is None:
                    exhausted = True
                    return
                u.left = set(range(len(u.items)))
                self._submit(w, u)

        no_worker_since = None
        while True:
            for w in self.workers:
                hand_out(w)
            if exhausted and not retry and not any(w.units for w in self.workers):
                return
            self._check_cluster()
            if any(w.ready or w.placed for w in self.workers):
                no_worker_since = None  # running, or a replacement loading its models
            elif not self.workers:
                raise ClusterError("every worker died; the finished problems are kept")
            else:  # replacements are waiting for a node with room: not for ever
                no_worker_since = no_worker_since or time.monotonic()
                if time.monotonic() - no_worker_since > NO_WORKER_SECONDS:
                    self._check_cluster(at_once=True)  # a node or GCS that is gone is the better reason
                    raise ClusterError(f"no worker has run for {NO_WORKER_SECONDS:.0f} s and no replacement has "
                                       f"found a node with room (each needs {self.needs}); the finished problems "
                                       "are kept")
            for ref in self._wait():
                w, kind = self.waiting.pop(ref)
                try:
                    value = self.ray.get(ref)
                except RayActorError as e:
                    yield from self._lost(w, e, retry)
                    self._replace(w)
                    continue
                if kind != "take":
                    self._advance(w, kind, value)
                    if w.ready:
                        self._poll(w)
                    continue
                for unit_id, index, out in value:
                    if unit_id is None:
                        raise ClusterError(f"worker {w.name} on node {w.node} failed: {out}")
                    u = w.units.get(unit_id)
                    if u is None or index not in u.left:
                        continue  # already done (cannot happen; kept safe for exactly-once)
                    u.left.discard(index)
                    key, problem = u.items[index][:2]
                    if not u.left:
                        del w.units[unit_id]
                        w.solo = False
                    yield (key, problem), out
                self._poll(w)

    def _submit(self, w: _Handle, u: _Unit) -> None:
        w.units[u.id] = u
        w.actor.submit.remote(u.id, [(i, u.items[i][2], u.items[i][3], u.items[i][1]) for i in sorted(u.left)])

    def _lost(self, w: _Handle, error: Exception, retry):
        """A worker died: its problems go back to the queue, or, tried MAX_TRIES times, become
        error records."""
        reason = _first_line(error)
        if self.on_status:
            self.on_status(f"worker {w.name} on node {w.node} died ({reason[:120]}); "
                           f"{len(w.units)} problems go back to the queue")
        for u in w.units.values():
            u.tries += 1
            if u.tries < MAX_TRIES:
                retry.append(u)
                continue
            for i in sorted(u.left):
                key, problem = u.items[i][:2]
                yield (key, problem), ProblemFailed(f"a worker died running this problem {u.tries} times "
                                                    f"(last on node {w.node}); not tried again")
        w.units.clear()
        w.ready = False

    def _replace(self, w: _Handle) -> None:
        self.workers.remove(w)
        if self.replacements_left <= 0:
            return
        self.replacements_left -= 1
        self.workers.append(self._start())

    def close(self) -> None:
        """Stop the workers and disconnect (a local instance stops; its temp folder goes)."""
        ray = getattr(self, "ray", None)
        if ray is None:
            return
        gcs = self.vital.get("gcs")
        if gcs is None or _answers(gcs):
            for w in self.workers:
                try:
                    ray.kill(w.actor)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        else:
            # ray.kill goes through the GCS: without it, it waits (for ever for a worker not yet
            # placed). A placed worker still takes calls from the driver: ask it to exit.
            refs = [w.actor.__ray_terminate__.remote() for w in self.workers if w.placed]
            if refs:
                ray.wait(refs, num_returns=len(refs), timeout=5.0)
        _abandon(ray, self.local)
