"""Reading the YAML files users write (recipes, registries, profiles) with errors that name the
file and the line."""

from __future__ import annotations

from pathlib import Path

import yaml


def read_yaml(path: str | Path, what: str, error: type[Exception]):
    """Parsed YAML of `path`; `error` is raised with "file[:line]: what is wrong"."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} does not exist")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read the {what} ({e.__class__.__name__})")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise error(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})")
