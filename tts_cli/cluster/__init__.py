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

The package: connect.py (starting or joining Ray, knocking on its servers, cleaning up a local
instance), worker.py (the Ray actor that runs searches), driver.py (RaySolver: the queue of
problems, faults, the results back to the command).
"""

from .connect import RAY_HINT, ClusterError, connect
from .driver import MAX_TRIES, NO_WORKER_SECONDS, RaySolver
from .worker import Worker

__all__ = ["ClusterError", "MAX_TRIES", "NO_WORKER_SECONDS", "RAY_HINT", "RaySolver", "Worker", "connect"]
