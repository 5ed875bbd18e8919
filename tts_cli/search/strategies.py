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


# The SearchConfig fields each strategy reads: a results file records these (a resume with other
# values stops), and ignores the rest (greedy CoT's answers do not depend on the temperature).
_PATHS = {"max_steps", "max_step_tokens", "step_delimiter", "system_prompt", "prompt"}
_SAMPLED = _PATHS | {"n", "temperature", "top_p", "top_k", "seed"}
_SCORED = _SAMPLED | {"aggregation", "selection", "repair"}
FIELDS_READ = {
    "cot": _PATHS,
    "majority": _SAMPLED,
    "best-of-n": _SCORED,
    "beam": _SCORED | {"beam_width", "lookahead"},
    "dvts": _SCORED | {"beam_width"},
    "auto": _SCORED | {"beam_width", "lookahead", "probe", "profile"},
    "particle-filter": _SCORED | {"resample_temperature"},
    "majority-adaptive": _SAMPLED | {"wave", "stop_threshold"},
    "best-of-n-adaptive": _SCORED | {"wave", "stop_threshold"},
    "deepconf": _SAMPLED | {"warmup", "confidence_percentile", "confidence_window"},
}

