"""Plain data for searches: the configuration, the tree, candidates, results and events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Callable, Literal, Optional

from pydantic import Field

NEEDS_VERIFIER = {"best-of-n", "beam", "dvts", "particle-filter", "best-of-n-adaptive"}  # cannot run without one
USES_VERIFIER = NEEDS_VERIFIER | {"auto"}  # auto scores its probe when it has one

AGGREGATIONS = ("last", "min", "avg", "prod")
SELECTIONS = ("vote", "max")  # PRM-Vote, PRM-Max

# The paper's and search-and-learn's prompt for Llama/Qwen instruct models on MATH.
SYSTEM_PROMPT = (
    "Solve the following math problem efficiently and clearly:\n\n"
    "- For simple problems (2 steps or fewer):\nProvide a concise solution with minimal explanation.\n\n"
    "- For complex problems (3 steps or more):\nUse this step-by-step format:\n\n"
    "## Step 1: [Concise description]\n[Brief explanation and calculations]\n\n"
    "## Step 2: [Concise description]\n[Brief explanation and calculations]\n\n...\n\n"
    "Regardless of the approach, always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)


class ConfigError(ValueError):
    """An impossible search configuration (the message says which option and why)."""


def setting(default, help: str, *, short: str | None = None, flag: bool = True):
    """A settings field declared once: its default, its help, and whether it is a command-line
    flag (`--name-with-dashes`, plus `short`). The type annotation carries the constraints that
    settings.py validates with pydantic where values enter (flags, recipes)."""
    return field(default=default, metadata={"help": help, "short": short, "flag": flag})


# Constraints on settings values (checked where they enter; see settings.py).
Positive = Annotated[int, Field(ge=1, strict=True)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]
Seed = Annotated[int, Field(ge=-1, le=2**31 - 1, strict=True)]
Temperature = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False, strict=True)]
Probability = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Text = Annotated[str, Field(strict=True)]


@dataclass
class SearchConfig:
    """How one search runs: what `strategy(search, config)` reads."""

    n: Positive = setting(4, "Budget N: sampled paths (majority, Best-of-N) or beams kept alive (beam, DVTS).")
    beam_width: Positive = setting(4, "Beam width M for beam and dvts.", short="-m")
    temperature: Temperature = setting(0.7, "Sampling temperature (cot is greedy).")
    top_p: Probability = setting(1.0, "Nucleus sampling.")
    top_k: NonNegative = setting(0, "Top-k sampling (0: off).")
    max_steps: Positive = setting(40, "Steps per path.")
    max_step_tokens: Positive = setting(256, "Tokens per step.")
    step_delimiter: Text = setting("\n\n", "Text that ends a step.", flag=False)
    aggregation: Literal["last", "min", "avg", "prod"] = setting(
        "last", "Step scores to a path score: last, min, avg or prod.")
    selection: Literal["vote", "max"] = setting("vote", "vote (PRM-Vote: summed path scores per answer) or max "
                                                "(PRM-Max: the best path).")
    lookahead: NonNegative = setting(0, "Beam search: greedy steps rolled out before a candidate is scored.")
    repair: bool = setting(False, "With --prm arithmetic: a candidate whose only false fact is its last sum, whose "
                                  "stated result is its answer, answers the true result instead (and counts as "
                                  "checked); the stated answer is kept in the record.")
    seed: Seed = setting(0, "Random seed: the same seed gives the same answers; -1 draws one (and records it).")
    system_prompt: Text = setting(SYSTEM_PROMPT, "System prompt of chat prompts.", flag=False)
    # "chat": the model's chat template with the system prompt; "few-shot": worked examples in
    # plain text (what base models need); "auto": chat when the model has a template.
    prompt: Literal["auto", "chat", "few-shot"] = setting(
        "auto", "chat (the model's template), few-shot (worked examples in plain text; base models) or auto.")
    profile: Optional[Text] = setting(None, "auto: a `tts calibrate` profile (default: the one saved for this "
                                            "policy and --prm).")
    probe: Optional[Positive] = setting(None, "auto: probe paths that predict the difficulty (default N/4, "
                                              "between 2 and 4; they count in N).")
    resample_temperature: Annotated[float, Field(gt=0.0, le=100.0, allow_inf_nan=False, strict=True)] = setting(
        1.0, "particle-filter: resampling weights are softmax(logit(path score) / T); 1 weighs a particle by its "
             "odds score / (1 - score), as its_hub does; higher flattens, lower sharpens.")
    wave: Optional[Positive] = setting(None, "majority-adaptive, best-of-n-adaptive: paths sampled per wave "
                                             "(default max(2, N/4)).")
    stop_threshold: Annotated[float, Field(gt=0.5, le=1.0, allow_inf_nan=False, strict=True)] = setting(
        0.95, "Adaptive strategies: stop once the probability that the leading answer is the mode reaches this.")
    warmup: Optional[Positive] = setting(None, "deepconf: paths that set the confidence threshold (count in N; "
                                               "default max(2, N/4)).")
    confidence_percentile: Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False, strict=True)] = setting(
        10.0, "deepconf: the threshold is this percentile of the warm-up paths' confidences (10 keeps about 90% "
              "of paths, DeepConf-high; 90 about 10%, DeepConf-low).")
    confidence_window: Positive = setting(32, "deepconf: tokens per sliding confidence window.")

    def validate(self, strategy: str) -> None:
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")
        if self.beam_width < 1:
            raise ConfigError(f"beam width must be >= 1, got {self.beam_width}")
        if strategy in ("beam", "dvts") and self.n % self.beam_width != 0:
            raise ConfigError(f"{strategy}: n ({self.n}) must be a multiple of the beam width ({self.beam_width})")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if self.max_steps < 1 or self.max_step_tokens < 1:
            raise ConfigError("max_steps and max_step_tokens must be >= 1")
        if not 0.0 < self.top_p <= 1.0:  # (NaN fails this too)
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.temperature < float("inf"):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.lookahead < 0:
            raise ConfigError(f"lookahead must be >= 0, got {self.lookahead}")
        if self.prompt not in ("auto", "chat", "few-shot"):
            raise ConfigError(f"prompt must be auto, chat or few-shot, got {self.prompt!r}")
        if self.probe is not None and self.probe < 1:
            raise ConfigError(f"probe must be >= 1, got {self.probe}")
        if self.resample_temperature <= 0:
            raise ConfigError(f"resample temperature must be > 0, got {self.resample_temperature}")
        if self.wave is not None and self.wave < 1:
            raise ConfigError(f"wave must be >= 1, got {self.wave}")
        if not 0.5 < self.stop_threshold <= 1.0:  # at 0.5 or below, any lead at all would stop
            raise ConfigError(f"stop threshold must be in (0.5, 1], got {self.stop_threshold}")
        if self.warmup is not None and self.warmup < 1:
            raise ConfigError(f"warmup must be >= 1, got {self.warmup}")
        if not 0.0 <= self.confidence_percentile <= 100.0:
            raise ConfigError(f"confidence percentile must be in [0, 100], got {self.confidence_percentile}")
        if self.confidence_window < 1:
            raise ConfigError(f"confidence window must be >= 1, got {self.confidence_window}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Node:
    """One generated step. Node 0 is the root (the prompt)."""

    id: int
    parent: int | None
    depth: int
    step: str
    tokens: int = 0
    score: float | None = None
    state: str = "active"  # root, active, finished, pruned
    reason: str = ""  # why finished (eos, boxed, length, max_steps, context) or pruned
    answer: str | None = None  # on finished nodes
    branch: int | None = None  # DVTS: the subtree it grew in (subtrees are independent searches)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    """A finished path."""

    node_id: int
    steps: list[str]
    step_scores: list[float]
    score: float | None  # aggregated
    answer: str | None
    answer_method: str | None  # boxed, or a fallback (answer_is, last_number)
    finish_reason: str
    # the policy's own confidence in each step, exp(mean token log-prob): kept so that finished
    # runs can be re-chosen without generating again (`tts rescore`)
    step_confidence: list[float] = field(default_factory=list)
    # tokens the policy generated for this path: what a budget that stops early saves per path
    # not sampled (pools.adaptive estimates it from these)
    tokens: int | None = None
    # DVTS: the subtree the path grew in; any k of a run's N/M subtrees are a DVTS run at k*M
    # (pools.subtrees estimates smaller budgets from them)
    branch: int | None = None
    # --repair: the answer the path stated, when the answer is the corrected result of its last sum
    repaired_from: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.steps)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["text"] = self.text
        return d


@dataclass
class Event:
    """Emitted while a search runs: kind is expand, score, prune or finish."""

    kind: str
    nodes: list[Node]
    tree: list[Node]


EventHandler = Callable[[Event], None]


# --- what a search asks for when it pauses (a strategy is a generator yielding these) ---------

@dataclass
class Generate:
    """The next step of these engine sequences; answered with one engine Step per sequence."""

    seqs: list
    stop: list[str]
    max_tokens: int


@dataclass
class AwaitDraws:
    """Shared draws (memo.py) that other searches are generating now: answered (with None) once
    each is in the memo or no search is generating it any more."""

    draws: list


@dataclass
class Parallel:
    """Run these generators (parts of one search, e.g. its independent paths or subtrees) side by
    side, each pausing on its own requests; answered with their return values, in order."""

    parts: list


@dataclass
class Score:
    """Verifier scores for these steps (verifiers.StepToScore); answered with one float each."""

    items: list


@dataclass
class SearchResult:
    problem: str
    strategy: str
    config: dict
    answer: str | None
    candidates: list[Candidate]
    tree: list[Node]
    votes: dict[str, dict]  # answer -> {"count": n, "score": summed path scores}
    compute: dict
    verifier: str | None = None
    notes: list[str] = field(default_factory=list)
    auto: dict | None = None  # --strategy auto: what was chosen, for which predicted difficulty, why
    # strategies that stop early: what they did not spend against N paths run to the end
    # (paths_not_sampled, paths_stopped_early, tokens_saved_estimate; Run.saved says how)
    saved: dict | None = None

    def as_dict(self) -> dict:
        return {
            "problem": self.problem,
            "strategy": self.strategy,
            "answer": self.answer,
            "verifier": self.verifier,
            "config": self.config,
            "votes": self.votes,
            "candidates": [c.as_dict() for c in self.candidates],
            "tree": [n.as_dict() for n in self.tree],
            "compute": self.compute,
            "notes": self.notes,
            **({"auto": self.auto, "predicted_difficulty": self.auto.get("difficulty")} if self.auto else {}),
            **({"saved": self.saved} if self.saved is not None else {}),
        }
