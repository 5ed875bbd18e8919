"""Command-line flags derived from the settings classes' fields (settings.py, search/types.py):
a setting is declared once, with its type, default and help, and every command that takes it
gets the same flag. `with_options` adds them to a command's signature; the command receives
the values in **opts (None where a flag was not given, so a recipe's value stands).

Also here: `normalize_argv`, the argv fixing `main()` does before Typer reads it."""

from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Optional

import typer

from .search.types import SearchConfig
from .serve.settings import ServeSettings
from .settings import BatchSettings, ModelSettings, RunSettings

LOCAL = "local"  # --ray with no address


def _plain_type(annotation) -> type:
    """The type Typer parses a flag as: int, float, str, bool or Path (Literal choices and
    constraints are checked by settings.py, with its messages)."""
    hint = annotation
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is typing.Literal:
        return str
    return hint if hint in (int, float, str, bool, Path) else str


def _default_text(f) -> str:
    default = f.default if f.default is not MISSING else None
    if default is None or isinstance(default, bool) or "default" in f.metadata.get("help", ""):
        return ""
    return f" (default {default})"


def flags_of(cls, *, only: tuple[str, ...] = (), without: tuple[str, ...] = ()) -> dict:
    """{name: (annotation, typer.Option)} for the flag fields of a settings class."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = {}
    for f in fields(cls):
        if not f.metadata.get("flag", True) or f.name in ("search", "models"):
            continue
        if (only and f.name not in only) or f.name in without:
            continue
        kind = _plain_type(hints[f.name])
        names = ["--" + f.name.replace("_", "-")] + ([f.metadata["short"]] if f.metadata.get("short") else [])
        help_text = f.metadata.get("help", "") + _default_text(f)
        if kind is bool:
            out[f.name] = (bool, typer.Option(False, *names, help=help_text))
        elif cls is BatchSettings and f.name == "concurrency":
            out[f.name] = (str, typer.Option("auto", *names, help=help_text))
        elif f.name == "ray":
            out[f.name] = (Optional[str], typer.Option(None, *names, metavar="[ADDRESS]", help=help_text))
        else:
            out[f.name] = (Optional[kind], typer.Option(None, *names, help=help_text))
    return out


CONFIG = {"config": (Optional[Path], typer.Option(None, "--config", help="YAML recipe of search options "
                                                                          "(flags override it)."))}
MODELS = flags_of(ModelSettings)
STRATEGY = flags_of(RunSettings)
SEARCH = flags_of(SearchConfig)
BATCH = flags_of(BatchSettings)
SERVE = flags_of(ServeSettings)  # tts serve's own: address, key, limits
# What every command that runs searches takes: models, prompt and the limits of a path.
PATHS = flags_of(SearchConfig, only=("temperature", "max_steps", "max_step_tokens", "seed", "prompt"))


def pick(group: dict, *names: str) -> dict:
    return {k: group[k] for k in names}


def without(group: dict, *names: str) -> dict:
    return {k: v for k, v in group.items() if k not in names}


def with_options(*groups: dict):
    """Add the groups' flags to a command (after its own parameters); Typer reads the signature,
    the command gets them in **opts."""
    def add(command):
        sig = inspect.signature(command)
        params = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
        extra = {name: spec for g in groups for name, spec in g.items()}
        params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
                   for name, (ann, default) in extra.items()]
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {**command.__annotations__, **{n: a for n, (a, _) in extra.items()}}
        return command
    return add


def normalize_argv(argv: list[str]) -> list[str]:
    """`--ray` takes an optional address: a bare `--ray` (last, or followed by an option or a
    word that is not an address) means a local instance."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg == "--ray":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is None or nxt.startswith("-") or not looks_like_address(nxt):
                out.append(LOCAL)
    return out


def looks_like_address(text: str) -> bool:
    return text in (LOCAL, "auto") or ":" in text
