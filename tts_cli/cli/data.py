"""The data sets by name (`tts data list|info|pull`): what `tts grade NAME` and the other batch
commands accept in place of a JSONL file."""

from __future__ import annotations

import typer

from .common import USER_ERRORS, app, console, fail

data_app = typer.Typer(help="Problem sets by name: list, info, pull.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list():
    """Known data sets, their licences, and whether each is bundled, downloaded or fetchable.

    Example: tts data list
    """
    from rich.table import Table

    from ..datasets import DATA_SETS, where
    table = Table(title="data sets")
    for col in ("name", "problems", "fields", "licence", "where"):
        table.add_column(col, no_wrap=col == "name")  # names are what users copy
    for s in DATA_SETS.values():
        table.add_row(s.name, str(s.problems), ", ".join(s.fields), s.licence, where(s))
    console.print(table)
    console.print("where: bundled = shipped with tts; downloaded = fetched by `tts data pull NAME`; fetchable = "
                  "`tts data pull NAME` gets it. Give a name wherever a data file goes (`tts grade gsm8k ...`); a "
                  "file of that name, if one exists, wins. Sources and licences: `tts data info NAME`.",
                  highlight=False)


@data_app.command("info")
def data_info(name: str):
    """Everything known about one data set: source, licence, fields, and where it is.

    Example: tts data info math500
    """
    import yaml

    from ..datasets import data_set_named, local_file, read_all_problems, where
    try:
        s = data_set_named(name)
        path = local_file(s)
        counted = len(read_all_problems(path)[0]) if path else None
    except USER_ERRORS as e:
        fail(str(e))
    info = {"name": s.name, "title": s.title, "problems": counted if counted is not None else s.problems,
            "fields": list(s.fields), "licence": s.licence, "source": s.source, "where": where(s),
            "path": str(path) if path else None}
    if s.repo:
        info["pull"] = {"repo": s.repo, "file": s.repo_file, "revision": s.revision or "main"}
    if s.note:
        info["note"] = s.note
    console.print(yaml.safe_dump(info, allow_unicode=True, sort_keys=False, width=10**6), highlight=False,
                  markup=False, soft_wrap=True)  # long source lines stay whole, for copying


@data_app.command("pull")
def data_pull(name: str):
    """Download a data set that is not bundled from the Hugging Face hub (into the hub cache),
    and keep it as the JSONL tts reads; `tts grade NAME` then finds it.

    Example: tts data pull math500
    """
    from ..datasets import data_set_named, pull, read_all_problems
    try:
        s = data_set_named(name)
        path = pull(s)
        count = len(read_all_problems(path)[0])
    except USER_ERRORS as e:
        fail(str(e))
    how = "bundled" if s.file else f"from {s.repo}"
    console.print(f"{name}: {count} problems ({how}) in {path}", highlight=False, markup=False)
