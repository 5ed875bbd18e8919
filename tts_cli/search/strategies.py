"""The strategies by name (what --strategy and the scheduler accept)."""

from .adaptive import best_of_n_adaptive, majority_adaptive
from .auto import auto
from .beam import beam
from .best_of_n import best_of_n
from .cot import cot
from .deepconf import deepconf
from .dvts import dvts
from .majority import majority
from .particle_filter import particle_filter

STRATEGIES = {
    "cot": cot,
    "majority": majority,
    "best-of-n": best_of_n,
    "beam": beam,
    "dvts": dvts,
    "auto": auto,
    "particle-filter": particle_filter,
    "majority-adaptive": majority_adaptive,
    "best-of-n-adaptive": best_of_n_adaptive,
    "deepconf": deepconf,
}
