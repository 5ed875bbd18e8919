"""The `tts` command: a thin client of the library. Each command parses its flags (derived from
the settings classes in cli_options.py), calls the library, and renders; nothing else.

- common.py: the app, the consoles, errors and interrupts
- run.py: solve, grade, compare, calibrate
- train.py: train-prm
- rescore.py: rescore (choose again from recorded candidates)
- models.py: models list/info/pull, bench
- data.py: data list/info/pull (problem sets by name)
- schema.py: schema (the JSON schema of recipes, profiles, registries)
- serve.py: serve (the HTTP server itself is tts_cli/serve/)
"""

from __future__ import annotations

# the order of `tts --help` and docs/cli.md: the searches first, the registries last
from . import run, rescore, train, serve, data, models, schema  # noqa: F401, I001 - registers the commands
from .common import app

__all__ = ["app", "main"]


def main() -> None:
    import sys

    from ..cli_options import normalize_argv
    from ..engine import handle_termination
    handle_termination()  # SIGTERM stops a run as Ctrl-C does: finished work kept, exit 143
    try:
        app(args=normalize_argv(sys.argv[1:]), prog_name="tts")
    finally:
        _forget_handled_interrupts()


def _forget_handled_interrupts() -> None:
    """CPython (3.11) sets a process-wide flag when a KeyboardInterrupt leaves code that eval()
    ran from a string (sympy's parser does, under math-verify), even when the interrupt is then
    caught; under `python -m` it ends the process with SIGINT at exit, so a Ctrl-C the CLI
    handled (finished work kept, exit 130 or 143) would read as killed by the signal. Any
    eval() of a string clears the flag; an interrupt that escapes main() sets it again."""
    eval("None")
