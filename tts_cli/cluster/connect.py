"""Starting a local Ray instance or joining a cluster; knocking on its servers; what a local
instance leaves behind, cleaned up."""

from __future__ import annotations

import collections
import importlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from ..cli_options import LOCAL

RAY_HINT = "--ray needs Ray: pip install 'tts_cli[ray]'"


class ClusterError(Exception):
    """A cluster that cannot be reached, or workers that cannot run: one line for the user."""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
    from ..engine import Terminated, handle_termination
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
