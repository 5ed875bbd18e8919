"""A command's settings: defaults, then a YAML recipe (`--config`), then the flags given; and the
small parsers of option values. Bad values are one-line SettingsErrors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .search import STRATEGIES, SearchConfig


class SettingsError(Exception):
    """Bad input (an option value, a recipe, a problem file): one line, exit code 2."""


STRATEGY_NAMES = list(STRATEGIES)
SEARCH_KEYS = ("n", "beam_width", "temperature", "top_p", "top_k", "max_steps", "max_step_tokens",
               "aggregation", "selection", "lookahead", "seed", "profile", "probe", "prompt",
               "resample_temperature", "wave", "stop_threshold", "warmup", "confidence_percentile",
               "confidence_window")
RUN_KEYS = ("strategy", "policy", "prm", "gpu_layers", "threads", "context_per_path", "models_file")
RUN_DEFAULTS = {"strategy": "beam", "policy": None, "prm": None, "gpu_layers": None, "threads": None,
                "context_per_path": None, "models_file": None}


def read_recipe(path: Path | None) -> dict:
    """A YAML mapping of option names (as on the command line, dashes or underscores)."""
    if path is None:
        return {}
    from .yamlfile import read_yaml
    data = read_yaml(path, "recipe file", SettingsError)
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: a recipe is a YAML mapping of option: value")
    out = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key not in SEARCH_KEYS + RUN_KEYS:
            raise SettingsError(f"{path}: unknown option {k!r} (known: {', '.join(SEARCH_KEYS + RUN_KEYS)})")
        out[key] = v
    return out


def collect_flags(values: dict) -> dict:
    """The search and run options among a command's parameters (paths as strings)."""
    return {k: (str(values[k]) if isinstance(values[k], Path) else values[k])
            for k in SEARCH_KEYS + RUN_KEYS if k in values}


def effective_settings(recipe: Path | None, flags: dict) -> dict:
    """Defaults, then the recipe, then the flags that were given."""
    settings = {**SearchConfig().as_dict(), **RUN_DEFAULTS}
    settings.pop("system_prompt")
    settings["profile"] = None
    settings.update(read_recipe(recipe))
    settings.update({k: v for k, v in flags.items() if v is not None})
    if settings["strategy"] not in STRATEGY_NAMES:
        raise SettingsError(f"--strategy: expected one of {', '.join(STRATEGY_NAMES)}, got {settings['strategy']!r}")
    return settings


def search_config(settings: dict) -> SearchConfig:
    cfg = SearchConfig(**{k: settings[k] for k in SEARCH_KEYS})
    cfg.validate(settings["strategy"])
    if settings["strategy"] == "auto" and cfg.profile:
        from .profile import Profile
        Profile.load(cfg.profile)  # fail early, with the file's name, on a bad profile
    return cfg


def parse_float_list(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise SettingsError(f"{option}: expected comma-separated numbers, got {text!r}")
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
    """A comma-separated list of names, each one of `known` ("unknown {noun}" otherwise)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    for s in names:
        if s not in known:
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
        text = sys.stdin.read()
    elif file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
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
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and out.is_dir():
        raise SettingsError(f"{out}: is a directory, expected a results file")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise SettingsError(f"{out}: the folder is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise SettingsError(f"{out}: the file is not writable")
