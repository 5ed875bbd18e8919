"""What every `tts` command shares: the Typer app, the consoles, and how errors and interrupts
end a command (one `error:` line and exit 2 for bad input; 130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import typer
from rich.console import Console

from ..cluster import ClusterError
from ..datasets import DataError
from ..engine import EngineError
from ..engine.chat import ChatTemplateError
from ..profile import ProfileError
from ..registry import RegistryError
from ..results import ResultsError
from ..search import ConfigError
from ..serve.errors import ServerError
from ..settings import SettingsError
from ..train_prm import TrainingError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Test-time scaling for small local GGUF models (llama.cpp).")
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Test-time scaling for small local GGUF models (llama.cpp)."""


# Errors that are the user's to fix: one line on stderr, exit code 2, no traceback. Anything
# else (engine.EngineBug among them) is a bug and keeps its traceback.
USER_ERRORS = (SettingsError, EngineError, RegistryError, DataError, ConfigError, ResultsError, ProfileError,
               TrainingError, ClusterError, ChatTemplateError, ServerError)


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape  # messages quote user text, file names and "[extra]"s
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """A status line on stderr (stdout stays for results)."""
    err_console.print(text, highlight=False, markup=False)


def interrupted(where: str, how: str | BaseException = "interrupted") -> None:
    """Ctrl-C (exit 130) or SIGTERM ("terminated", exit 143): finished work is kept. `how`: the
    word, or the KeyboardInterrupt caught (engine.Terminated for SIGTERM)."""
    if isinstance(how, BaseException):
        from ..engine import Terminated
        how = "terminated" if isinstance(how, Terminated) else "interrupted"
    err_console.print(f"{how}: {where}; rerun to resume", highlight=False)
    raise typer.Exit(143 if how == "terminated" else 130)


