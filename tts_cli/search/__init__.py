"""Search strategies: one module each, all generator functions `strategy(search, config)` that
pause on engine and verifier requests; `scheduler.py` runs many of them at once, and
`run_search` runs one."""

from .auto import auto
from .beam import beam
from .best_of_n import best_of_n
from .common import Search
from .cot import cot
from .dvts import dvts
from .majority import majority
from .types import Candidate, ConfigError, Event, Node, SearchConfig, SearchResult

STRATEGIES = {
    "cot": cot,
    "majority": majority,
    "best-of-n": best_of_n,
    "beam": beam,
    "dvts": dvts,
    "auto": auto,
}
NEEDS_VERIFIER = {"best-of-n", "beam", "dvts"}  # cannot run without one
USES_VERIFIER = NEEDS_VERIFIER | {"auto"}  # auto scores its probe when it has one

from .scheduler import Job, Scheduler, run_search  # noqa: E402  (it looks strategies up here)

__all__ = ["STRATEGIES", "NEEDS_VERIFIER", "USES_VERIFIER", "Candidate", "ConfigError", "Event", "Job", "Node",
           "Scheduler", "Search", "SearchConfig", "SearchResult", "auto", "beam", "best_of_n", "cot", "dvts",
           "majority", "run_search"]
