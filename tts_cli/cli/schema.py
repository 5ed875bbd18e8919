"""`tts schema`: the JSON schema a recipe, a profile or a registry file is checked against."""

from __future__ import annotations

import json

import typer

from .common import app, fail

FILES = ("recipe", "profile", "registry")


@app.command()
def schema(
    file: str = typer.Argument(..., help="recipe (--config), profile (tts calibrate's) or registry (models.yaml)."),
):
    """Print the JSON schema that tts checks a YAML file of yours against.

    Examples:
      tts schema recipe
      tts schema registry
    """
    from ..profile import ProfileFile
    from ..registry import RegistryFile
    from ..settings import recipe_schema
    schemas = {"recipe": recipe_schema, "profile": ProfileFile.model_json_schema,
               "registry": RegistryFile.model_json_schema}
    if file not in schemas:
        fail(f"schema: expected one of {', '.join(FILES)}, got {file!r}")
    print(json.dumps(schemas[file](), indent=1))
