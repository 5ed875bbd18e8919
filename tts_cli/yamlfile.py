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


def read_yaml_lines(path: str | Path, what: str, error: type[Exception]) -> tuple[object, dict[tuple, int]]:
    """Parsed YAML of `path` and the line (1-based) of every mapping key and list item in it, by
    its path of keys and indices: {("models", 2, "params"): 14, ...}. Errors as read_yaml."""
    data = read_yaml(path, what, error)
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # read_yaml accepted it; no line numbers is no reason to fail
        return data, lines

    def walk(node, where: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                here = where + (key_node.value,)
                lines[here] = key_node.start_mark.line + 1
                walk(value_node, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                here = where + (i,)
                lines[here] = item.start_mark.line + 1
                walk(item, here)

    if root is not None:
        walk(root, ())
    return data, lines


def first_error(error) -> tuple[tuple, str, str]:
    """The first problem a pydantic ValidationError found: (its location as a path of keys and
    indices, that location written as `models[3].params`, "what is wrong, got VALUE")."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    where = "".join(f"[{x + 1}]" if isinstance(x, int) else f".{x}" for x in loc).lstrip(".") or "value"
    message = first["msg"][0].lower() + first["msg"][1:]
    value = first.get("input")
    if first["type"] not in ("missing", "extra_forbidden") and not isinstance(value, (dict, list)):
        shown = {None: "null", True: "true", False: "false"}[value] if value is None or isinstance(value, bool) \
            else repr(value)
        message += f", got {shown}"
    return loc, where, message


def invalid(path, error, lines: dict[tuple, int]) -> str:
    """`file:line: where: what is wrong` for a file whose content failed validation."""
    loc, where, message = first_error(error)
    line = next((lines[loc[:k]] for k in range(len(loc), 0, -1) if loc[:k] in lines), None)
    return f"{path}{f':{line}' if line else ''}: {where}: {message}"
