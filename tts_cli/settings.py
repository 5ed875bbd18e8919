"""A command's settings as typed objects, built once at the edge: defaults, then a YAML recipe
(`--config`), then the flags given.

- `SearchConfig` (search/types.py): how one search runs.
- `ModelSettings`: which models a run loads and how (threads, GPU layers, context per path).
- `RunSettings`: a strategy with its SearchConfig and ModelSettings: what `solve` runs, and
  each run of grade, compare and calibrate.
- `BatchSettings`: going over a data set (keys, limit, concurrency, Ray, results-file policy).

Every field is declared once (type and constraints in its annotation, default and help in
`setting(...)`); cli_options.py derives the flags from the fields. Values are validated with
pydantic where they enter: a bad flag is `--name: what is wrong`, a bad recipe value
`file:line: key: what is wrong`, both SettingsErrors (one line, exit code 2).
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Optional

from pydantic import Field, TypeAdapter, ValidationError

from .search import STRATEGIES, USES_VERIFIER, SearchConfig
from .search.types import NonNegative, Positive, Text, setting
from .verifiers.arithmetic import ArithmeticVerifier
from .yamlfile import first_error


class SettingsError(Exception):
    """Bad input (an option value, a recipe, a problem file): one line, exit code 2."""


STRATEGY_NAMES = list(STRATEGIES)
DEFAULT_CONTEXT_PER_PATH = 2048
DRAW_SEED = -1  # --seed -1: a fresh seed, recorded with the results


@dataclass(frozen=True)
class ModelSettings:
    """Which models a run loads, and how they run."""

    policy: Optional[Text] = setting(None, "Policy model: a models.yaml name or a .gguf path (default: bundled "
                                           "SmolLM2-135M-Instruct).")
    prm: Optional[Text] = setting(None, "Verifier: judge (the policy asked whether the step is correct), "
                                        "confidence (the policy's own log-probs), arithmetic (the arithmetic a step "
                                        "states, checked), coverage (the share of the problem's numbers that arithmetic "
                                        "uses), arithmetic+NAME (both: a false fact zeroes NAME's score; e.g. "
                                        "arithmetic+coverage), "
                                        "a models.yaml PRM name, or a .gguf path (default for the strategies that "
                                        "need one: judge).")
    gpu_layers: Optional[NonNegative] = setting(None, "Layers to offload to the GPU (default all; 0 = CPU).")
    threads: Optional[Positive] = setting(None, "CPU threads (default: all cores).")
    context_per_path: Optional[Annotated[int, Field(ge=64, le=1 << 20, strict=True)]] = setting(
        None, f"KV cells per path, prompt included (default {DEFAULT_CONTEXT_PER_PATH}, less when the memory free "
              "does not hold one search of that).")
    memory: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = setting(
        None, "GB the run's KV caches may take (default: what the device has free, as llama.cpp reports it): "
              "the searches in flight and the cells per path are sized to fit.")
    models_file: Optional[Path] = setting(None, "Extra model registry YAML (default: "
                                                "~/.config/tts_cli/models.yaml if present).")


@dataclass(frozen=True)
class RunSettings:
    """A strategy, its search configuration and its models: one run."""

    strategy: Text = setting("beam", "cot, majority, best-of-n, beam, dvts, auto, particle-filter, majority-adaptive, "
                                     "best-of-n-adaptive or deepconf.", short="-s")
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    models: ModelSettings = dataclasses.field(default_factory=ModelSettings)

    def but(self, strategy: str | None = None, **search) -> "RunSettings":
        """These settings with another strategy and/or search values (validated again)."""
        out = replace(self, strategy=strategy or self.strategy, search=replace(self.search, **search))
        return out.checked()

    def checked(self) -> "RunSettings":
        if self.strategy not in STRATEGY_NAMES:
            raise SettingsError(f"--strategy: expected one of {', '.join(STRATEGY_NAMES)}, got {self.strategy!r}")
        from .search import ConfigError
        try:
            self.search.validate(self.strategy)
        except ConfigError as e:
            raise SettingsError(str(e))
        if self.search.repair and (self.models.prm != ArithmeticVerifier.name or self.strategy not in USES_VERIFIER):
            raise SettingsError("--repair: needs --prm arithmetic and a strategy that scores paths (its check "
                                f"decides what a repaired path scores); got --prm {self.models.prm} with "
                                f"--strategy {self.strategy}")
        if self.strategy == "auto" and self.search.profile:
            from .profile import Profile
            Profile.load(self.search.profile)  # fail early, with the file's name, on a bad profile
        return self

    def as_dict(self) -> dict:
        """The effective settings, flat (what `--json` and results headers print)."""
        search = {k: v for k, v in dataclasses.asdict(self.search).items()}
        models = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self.models).items()}
        return {"strategy": self.strategy, **search, **models}


@dataclass(frozen=True)
class BatchSettings:
    """Going over a data set: grade, compare and calibrate."""

    problem_key: Optional[Text] = setting(None, "Field holding the problem (default: problem or question).")
    answer_key: Optional[Text] = setting(None, "Field holding the reference answer (default: answer).")
    limit: Optional[Positive] = setting(None, "Only the first K problems.")
    concurrency: Text = setting("auto", "Searches in flight at once, their sequences batched together: a "
                                        "number, or auto (fill a batch: 64 sequences on a GPU, 32 on CPU).")
    ray: Optional[Text] = setting(None, "Run the searches on Ray workers: bare --ray starts a local instance "
                                        "(loopback only, no dashboard); --ray HOST:PORT or --ray auto joins a "
                                        "running cluster. Needs tts_cli[ray].")
    workers: Optional[Positive] = setting(None, "With --ray: workers (default: one per GPU, or one per node on "
                                                "CPU nodes).")
    wait: bool = setting(False, "If another tts run is writing to the same results file, start when it ends "
                                "(default: stop with an error).")
    restart: bool = setting(False, "Start the results file(s) over: an existing file is moved aside (FILE.1, "
                                   "...), never deleted. Needed when a file belongs to another configuration.")
    retry_errors: bool = setting(False, "Solve again the problems whose records are errors (a later record "
                                        "supersedes the error).")
    skip_bad: bool = setting(False, "Record malformed data lines (not JSON, not UTF-8, a field of the wrong "
                                    "type) as errors and go on.")

    def concurrency_value(self) -> int | None:
        return parse_concurrency(self.concurrency)


# --- validation ------------------------------------------------------------------------------

def field_names(cls) -> list[str]:
    """The fields of a settings class that a recipe or a flag may set."""
    return [f.name for f in fields(cls) if f.metadata.get("flag", True) and f.name not in ("search", "models")]


SEARCH_KEYS = tuple(field_names(SearchConfig))
MODEL_KEYS = tuple(field_names(ModelSettings))
RECIPE_KEYS = ("strategy",) + SEARCH_KEYS + MODEL_KEYS


def _validated(cls, values: dict, where) -> object:
    """An instance of the settings class `cls` from `values`; `where(field)` says where a bad
    value came from (a flag, a recipe line) for the error."""
    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as e:
        loc, _, message = first_error(e)
        raise SettingsError(f"{where(str(loc[0]) if loc else 'value')}: {message}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def read_recipe(path: Path | None) -> tuple[dict, dict]:
    """A YAML mapping of option names (as on the command line, dashes or underscores) -> (values,
    line of each key)."""
    if path is None:
        return {}, {}
    from .yamlfile import read_yaml_lines
    data, lines = read_yaml_lines(path, "recipe file", SettingsError)
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: a recipe is a YAML mapping of option: value")
    out, where = {}, {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key not in RECIPE_KEYS:
            raise SettingsError(f"{path}:{lines.get((k,), '?')}: unknown option {k!r} (known: "
                                f"{', '.join(RECIPE_KEYS)})")
        out[key], where[key] = v, lines.get((k,))
    return out, where


def build_run(recipe: Path | None, flags: dict, **fixed) -> RunSettings:
    """Defaults, then the recipe, then the flags that were given (None: not given), then `fixed`
    (what a command decides itself, e.g. calibrate's strategy)."""
    values, lines = read_recipe(recipe)

    def where(name):
        if name in flags and flags[name] is not None:
            return _flag(name)
        return f"{recipe}:{lines.get(name, '?')}: {name}" if name in values else name

    given = {k: v for k, v in flags.items() if v is not None and k in RECIPE_KEYS}
    merged = {**values, **given, **fixed}
    merged = {k: (str(v) if isinstance(v, Path) and k != "models_file" else v) for k, v in merged.items()}
    search = _validated(SearchConfig, {k: merged[k] for k in SEARCH_KEYS if k in merged}, where)
    models = _validated(ModelSettings, {k: merged[k] for k in MODEL_KEYS if k in merged}, where)
    strategy = merged.get("strategy", "beam")
    if not isinstance(strategy, str):
        raise SettingsError(f"{where('strategy')}: expected a strategy name, got {strategy!r}")
    return RunSettings(strategy=strategy, search=search, models=models).checked()


def build_search(base: RunSettings, strategy: str, values: dict, where) -> RunSettings:
    """`base` with another strategy and search values that came from elsewhere than flags or a
    recipe (a `tts serve` request), validated by the same code; `where(field)` names where a bad
    value came from. A model setting cannot change here: the models are already loaded."""
    if strategy not in STRATEGY_NAMES:
        raise SettingsError(f"{where('strategy')}: expected one of {', '.join(STRATEGY_NAMES)}, got {strategy!r}")
    search = _validated(SearchConfig, {**dataclasses.asdict(base.search), **values}, where)
    return RunSettings(strategy=strategy, search=search, models=base.models).checked()


def build_batch(flags: dict) -> BatchSettings:
    values = {k: flags[k] for k in field_names(BatchSettings) if k in flags and flags[k] is not None}
    batch = _validated(BatchSettings, values, _flag)
    batch.concurrency_value()  # a bad --concurrency fails now
    return batch


def draw_seed() -> int:
    return secrets.randbelow(2**31 - 1) + 1


def with_seed(settings: RunSettings, seed: int) -> RunSettings:
    return replace(settings, search=replace(settings.search, seed=seed))


# --- small parsers of option values -----------------------------------------------------------

def parse_float_list(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or not all(v == v and abs(v) != float("inf") for v in values):
        raise SettingsError(f"{option}: expected comma-separated finite numbers, got {text!r}")
    return values


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SettingsError(f"{option}: expected comma-separated integers such as 1,4,16, got {text!r}")
    if not values or any(v < 1 for v in values):
        raise SettingsError(f"{option}: every value must be >= 1, got {text!r}")
    return values


def parse_names(text: str, option: str, known, noun: str) -> list[str]:
    """A comma-separated list of names, each one of `known` ("unknown {noun}" otherwise; None:
    any name)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    for s in names:
        if known is not None and s not in known:
            raise SettingsError(f"{option}: unknown {noun} {s!r} (known: {', '.join(known)})")
    return names


def parse_concurrency(text: str) -> int | None:
    """--concurrency: a number >= 1, or auto (None: as many searches as fill a batch)."""
    if text.strip().lower() == "auto":
        return None
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise SettingsError(f"--concurrency: expected a number >= 1 or auto, got {text!r}")
    return k


def read_problem_text(problem: str | None, file: str | None) -> str:
    """`tts solve`'s problem: the argument, a file, or standard input (`--file -`)."""
    if problem is not None and file is not None:
        raise SettingsError("give the problem as an argument or with --file, not both")
    if file == "-":
        try:
            data = sys.stdin.buffer.read() if sys.stdin is not None else b""
        except (OSError, ValueError, AttributeError) as e:
            raise SettingsError(f"--file -: cannot read standard input ({type(e).__name__})")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SettingsError("--file -: standard input is not UTF-8 text")
    elif file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise SettingsError(f"{file}: file does not exist")
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"{file}: cannot read it as text ({e.__class__.__name__})")
    elif problem is not None:
        text = problem
    else:
        raise SettingsError("no problem given: tts solve \"PROBLEM\" or tts solve --file FILE")
    if not text.strip():
        raise SettingsError("the problem text is empty")
    return text.strip()


def check_writable(out: Path) -> None:
    """A results file (or folder) we can write, checked before any model loads."""
    from .results import ResultsError, check_results_path
    try:
        check_results_path(out)
    except ResultsError as e:
        raise SettingsError(str(e))


def recipe_schema() -> dict:
    """The JSON schema of a recipe (`--config`): a mapping of option names to values, each
    checked as its flag is (`tts schema recipe` prints it)."""
    properties = {"strategy": {"type": "string", "enum": STRATEGY_NAMES, "description": "The search strategy."}}
    for cls, names in ((SearchConfig, SEARCH_KEYS), (ModelSettings, MODEL_KEYS)):
        full = TypeAdapter(cls).json_schema()
        help_of = {f.name: f.metadata.get("help", "") for f in fields(cls)}
        for name in names:
            properties[name] = {**full["properties"][name], "description": help_of[name]}
    return {"title": "tts recipe", "type": "object", "properties": properties, "additionalProperties": False,
            "description": "Option names as on the command line (dashes or underscores); flags override them."}


__all__ = ["BatchSettings", "DEFAULT_CONTEXT_PER_PATH", "DRAW_SEED", "ModelSettings", "RunSettings",
           "SettingsError", "STRATEGY_NAMES", "build_batch", "build_run", "build_search", "draw_seed", "parse_concurrency",
           "parse_float_list", "parse_int_list", "parse_names", "read_problem_text", "read_recipe", "with_seed"]
