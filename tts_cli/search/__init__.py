"""Search strategies: one module each, all generator functions `strategy(search, config)` that
pause on engine and verifier requests; `scheduler.py` runs many of them at once, and
`run_search` runs one."""

from .adaptive import best_of_n_adaptive, majority_adaptive
from .auto import auto
from .beam import beam
from .best_of_n import best_of_n
from .common import Search
from .cot import cot
from .deepconf import deepconf
from .dvts import dvts
from .majority import majority
from .memo import StepMemo
from .particle_filter import particle_filter
from .scheduler import Job, Scheduler, run_search
from .strategies import STRATEGIES
from .types import NEEDS_VERIFIER, USES_VERIFIER, Candidate, ConfigError, Event, Node, SearchConfig, SearchResult

__all__ = ["STRATEGIES", "NEEDS_VERIFIER", "USES_VERIFIER", "Candidate", "ConfigError", "Event", "Job", "Node",
           "Scheduler", "Search", "SearchConfig", "StepMemo", "SearchResult", "auto", "beam", "best_of_n", "best_of_n_adaptive",
           "cot", "deepconf", "dvts", "majority", "majority_adaptive", "particle_filter", "run_search"]
