"""`--ray`: the searches of grade, compare and calibrate on a Ray cluster.

The driver (the `tts` process) reads the data, hands problems out and alone writes the results
files; workers are Ray actors that load the models once and run the problems they are handed
through their own scheduler, several at once (the same code as a local run). Work goes out
from one queue as workers have room (a fast worker takes more), each worker holding its
concurrency plus one problem, so its scheduler never waits on the driver.

Faults: a problem is done once. When a worker dies (its process or its node), the problems it
held go back to the queue and are retried, each alone on a worker, so that a problem that
kills workers is found out without blaming its neighbours; after MAX_TRIES it is recorded as
an error. The dead worker is replaced while the run has replacements left.

A cluster that can no longer run the searches stops the run with one line, the finished records
kept, when for SILENT_SECONDS
- the head node's GCS has not answered: without it no worker can be started or stopped, Ray calls
  that need it block, and Ray itself ends the driver with a log line a minute later; or
- the raylet of the node the driver is attached to has not answered: Ray then counts the driver
  as gone, stops its workers and never places another;
or when no worker has run for NO_WORKER_SECONDS and none of the replacements has found a node
with room. Every Ray call of the driver's loop returns at once or has a timeout, so that these
checks run.

A local instance (`--ray` with no address) binds every Ray server to loopback with the
dashboard off; `--ray HOST:PORT` or `--ray auto` joins an existing cluster, whose network
exposure is its operator's business.
"""

from __future__ import annotations

import collections
import importlib
import itertools
import os
import pickle
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cli_options import LOCAL
from .results import ProblemFailed

RAY_HINT = "--ray needs Ray: pip install 'tts_cli[ray]'"
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


class ClusterError(Exception):
    """A cluster that cannot be reached, or workers that cannot run: one line for the user."""


def _auth_token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def connect(address: str, num_cpus: int | None = None):
    """Start a local Ray instance (address "local") or join a cluster; returns the ray module."""
    if address == LOCAL:
        # Ray's default binds its servers to the network interface; with clusters "disabled"
        # every server listens on loopback only (this is read when ray is imported).
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    elif "RAY_AUTH_MODE" not in os.environ and _auth_token_available():
        # `ray start --head` turns token authentication on; a driver must ask for it too.
        os.environ["RAY_AUTH_MODE"] = "token"
    ray = _import_ray()
    if address not in (LOCAL, "auto"):
        _check_reachable(address)
    from .engine import Terminated, handle_termination
    try:
        _init(ray, address, num_cpus)
    except BaseException as e:
        handle_termination()  # see below
        _abandon(ray, address == LOCAL)  # what Ray started (a local instance, its temp folder)
        if isinstance(e, SystemExit) and e.code == signal.SIGTERM:
            raise Terminated() from None  # SIGTERM while ray.init ran: its handler calls sys.exit
        if isinstance(e, (KeyboardInterrupt, SystemExit, ClusterError)):
            raise
        where = "start a local Ray instance" if address == LOCAL else f"connect to the Ray cluster at {address}"
        raise ClusterError(f"cannot {where}: {_first_line(e)}") from None
    # ray.init on the main thread replaces the SIGTERM handler with one that exits at once: put
    # ours back, so that SIGTERM stops the run as Ctrl-C does (workers stopped, records kept,
    # exit 143).
    handle_termination()
    return ray


def _import_ray():
    # Ray's C++ core installs a crash handler in the driver that also takes SIGTERM: arriving while
    # ray.init connects (before connect() puts our handler back) it prints a stack dump and aborts.
    # The driver runs no native code of its own, so it goes without that handler; the variable is
    # read when ray is imported and is not left for the processes of a local instance.
    key = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
    before = os.environ.get(key)
    os.environ.setdefault(key, "1")
    try:
        # shielded: a half-imported ray fails in the exit handler it registers, with a traceback
        return _shielded(lambda: importlib.import_module("ray"))
    except ImportError:
        raise ClusterError(RAY_HINT)
    finally:
        if before is None:
            os.environ.pop(key, None)


def _init(ray, address: str, num_cpus: int | None) -> None:
    import logging
    if address != LOCAL:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        return
    from ray._private import ray_constants
    if ray_constants.ENABLE_RAY_CLUSTER:  # ray was imported before we could set it
        raise ClusterError("a local Ray instance must be started before ray is imported "
                           "(it binds to loopback only); start `tts` afresh")
    _adopt_orphans()
    # Shielded, so that what a start cut off midway would leave behind is not: the processes and
    # the temp folder of a local instance are removed once it has started. The thread stays, as
    # the GCS and the raylet end with the thread that started them (Ray has Linux send them
    # SIGKILL then). Off the main thread ray.init also leaves our SIGTERM handler alone.
    _shielded(lambda: ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                               logging_level=logging.ERROR), keep_thread=True)


def _shielded(call, keep_thread: bool = False):
    """call() on a thread of its own: Python raises a Ctrl-C or SIGTERM (engine.Terminated) in the
    main thread only, so one that arrives meanwhile is raised here once call() has returned,
    instead of cutting it off midway. keep_thread: the thread then waits until the process ends."""
    out, failed, done = [], [], threading.Event()

    def run():
        try:
            out.append(call())
        except BaseException as e:  # noqa: BLE001 - raised in the calling thread below
            failed.append(e)
            return
        finally:
            done.set()
        if keep_thread:
            threading.Event().wait()

    threading.Thread(target=run, daemon=True).start()
    stop = None
    while True:
        try:  # polled: an interrupted Thread.join can take a live thread for ended (Python 3.11)
            if done.is_set():
                break
            time.sleep(0.05)
        except KeyboardInterrupt as e:
            stop = stop or e
    if stop is not None:
        raise stop
    if failed:
        raise failed[0]
    return out[0]


def _abandon(ray, local: bool) -> None:
    """Disconnect from Ray; a local instance stops, its processes end and its temp folder goes."""
    session = _session_dir(ray) if local else None
    try:
        ray.shutdown()
    finally:
        if local:
            # ray.shutdown stops the processes it started itself, not those its raylet started:
            # an agent still starting (shortly after ray.init) then waits a minute for the GCS
            _end(_ray_descendants())
        _remove_session_dir(session)


def _adopt_orphans() -> None:
    """Become the parent of this process's descendants whose parent ended (a child subreaper;
    Linux only), so that _ray_descendants() still finds those of a local instance whose raylet
    ended first."""
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _ray_descendants() -> dict[int, str]:
    """This process's descendants that are Ray's (their command line says so), pid -> start
    time, from /proc (none where there is none)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid in _pids():
        stat = _stat(pid)
        if stat:
            children[int(stat[1])].append(pid)
    out, todo = {}, [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    is_ray = b"ray" in f.read()
            except OSError:
                continue
            stat = _stat(child)
            if is_ray and stat:
                out[child] = stat[19]
    return out


def _end(processes: dict[int, str], grace: float = 3.0) -> None:
    """SIGTERM those of `processes` (pid -> start time) still running, SIGKILL what is left after
    `grace` seconds."""
    def running() -> list[int]:  # the same processes (pids are reused), not yet ended
        return [pid for pid, t in processes.items() if (stat := _stat(pid)) and stat[19] == t and stat[0] != "Z"]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in running():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while running() and time.monotonic() < deadline:
            time.sleep(0.1)


def _pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ..., start time at 19)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _session_dir(ray) -> str | None:
    """The temp folder of the local instance this process started (removed when it stops)."""
    try:
        return ray._private.worker._global_node.get_session_dir_path()
    except Exception:  # noqa: BLE001 - private API; without it the folder stays, as Ray leaves it
        return None


def _remove_session_dir(path: str | None) -> None:
    import shutil
    if not path or not os.path.isdir(path):
        return
    shutil.rmtree(path, ignore_errors=True)
    latest = os.path.join(os.path.dirname(path), "session_latest")
    if os.path.islink(latest) and os.path.realpath(latest) == os.path.realpath(path):
        os.unlink(latest)


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes, logging as it goes: knock first."""
    try:
        _knock(address, timeout=5)
    except ValueError:
        raise ClusterError(f"--ray {address}: expected HOST:PORT (the head node's GCS port, 6379 by default) or auto")
    except OSError as e:
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {e.strerror or e} (is `ray start --head` "
                           "running there?)")


def _knock(address: str, timeout: float) -> None:
    """Connect to HOST:PORT and hang up; OSError if nothing accepts, ValueError if no port."""
    host, _, port = address.rpartition(":")
    socket.create_connection((host.removeprefix("ray://").strip("[]"), int(port)), timeout=timeout).close()


def _answers(address: str) -> bool:
    """Whether a server (the GCS, a raylet) accepts connections at HOST:PORT; asked without Ray,
    whose calls that need the GCS block while it is gone."""
    try:
        _knock(address, timeout=1)
        return True
    except (OSError, ValueError):
        return False


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
        from .solver import Session
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
        jobs: dict = {}

        def pairs():
            while True:
                if self.scheduler.in_flight:
                    try:
                        unit, items = self.inbox.get_nowait()
                    except queue.Empty:
                        yield None  # nothing new: the searches in flight go on
                        continue
                else:
                    unit, items = self.inbox.get()
                for index, strategy, cfg, problem in items:
                    jobs[(unit, index)] = (strategy, cfg)
                    yield (unit, index), problem

        try:
            for ((unit, index), _), out in self.session.solve_many(self.scheduler, pairs(), jobs.pop):
                self.outbox.put((unit, index, out))
        except BaseException as e:  # noqa: BLE001 - the driver stops the run with it
            self.outbox.put((None, None, RuntimeError(f"{type(e).__name__}: {e}")))


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _picklable(value):
    if isinstance(value, BaseException):
        try:
            pickle.loads(pickle.dumps(value))
        except Exception:  # noqa: BLE001
            return RuntimeError(f"{type(value).__name__}: {value}")
    return value


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
        from .registry import load_registry
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
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            alive = [n for n in ray.nodes() if n.get("Alive")]
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
