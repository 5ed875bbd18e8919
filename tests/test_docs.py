"""The docs stay true: the CLI reference is generated from the Typer app, and fails here when
it no longer matches the code."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REGENERATE = "python -m typer tts_cli.cli utils docs --name tts --output docs/cli.md"


def test_the_cli_reference_is_generated_from_the_code(tmp_path):
    out = tmp_path / "cli.md"
    r = subprocess.run([sys.executable, "-m", "typer", "tts_cli.cli", "utils", "docs", "--name", "tts", "--output",
                        str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (REPO / "docs" / "cli.md").read_text(), f"docs/cli.md is stale: run `{REGENERATE}`"


def test_the_readme_links_to_the_docs_that_exist():
    import re
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert "docs/cli.md" in links
    for link in links:
        assert (REPO / link).exists(), link


def test_schema_prints_what_each_file_is_checked_against():
    import json

    from cli_helpers import one_line_error, tts
    from tts_cli.settings import RECIPE_KEYS
    recipe = json.loads(tts("schema", "recipe").stdout)
    assert set(recipe["properties"]) == set(RECIPE_KEYS) and recipe["additionalProperties"] is False
    assert recipe["properties"]["n"]["minimum"] == 1 and "Budget" in recipe["properties"]["n"]["description"]
    assert "choices" in json.loads(tts("schema", "profile").stdout)["properties"]
    assert "ModelEntry" in json.loads(tts("schema", "registry").stdout)["$defs"]
    one_line_error(tts("schema", "bogus"), "expected one of recipe, profile, registry")
