"""Every example a user copies runs: each `tts` line of the README's shell blocks and of the
commands' --help, in a fresh folder with nothing but the repository's files, on the tiny test
model (a real one is too slow for a test): the same commands, with the model and a small budget
added after them (later flags win). Lines that need the network, a server left running, a GPU
model file or a long build are left out, and listed here."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# What a line may not need here: the network (pull, --ray to a cluster, curl), a server left
# running (serve), an installation or the test suite itself, a model file that is not here.
SKIP = re.compile(r"^(pip|CMAKE_ARGS|curl|python|ray )|\bpull\b|\btts serve\b|--ray\b|--server\b|"
                  r"qwen2\.5-1\.5b-q4_k_m\.gguf|gemma")

FAST = "--max-steps 2 --max-step-tokens 8 --threads 2"
# Flags added after each subcommand: the tiny model, short paths, few problems.
WRAPPER = r"""
tts() {
  local sub=$1; shift
  case "$sub" in
    solve) command tts solve "$@" --policy "$TINY" %(fast)s ;;
    grade|compare) command tts "$sub" "$@" --policy "$TINY" %(fast)s --limit 2 ;;
    calibrate) command tts calibrate "$@" --policy "$TINY" %(fast)s --limit 4 ;;
    train-prm) command tts train-prm "$@" --policy "$TINY" %(fast)s --limit 4 --samples 2 ;;
    rescore) command tts rescore "$@" --policy "$TINY" --threads 2 ;;
    bench) command tts bench "$@" --model "$TINY" --n 1,2 --tokens 8 --no-naive ;;
    *) command tts "$sub" "$@" ;;
  esac
}
""" % {"fast": FAST}


def shell_lines(block: str) -> list[str]:
    """The commands of a shell block, continuation lines joined, comments kept (bash drops them)."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def readme_blocks() -> list[tuple[str, list[str]]]:
    text = (REPO / "README.md").read_text()
    return [(f"README block {i}", shell_lines(b)) for i, b in enumerate(re.findall(r"```bash\n(.*?)```", text, re.S))]


def help_blocks() -> list[tuple[str, list[str]]]:
    """The Examples of every command's --help (its docstring), one block per command module."""
    out = []
    for path in sorted((REPO / "tts_cli" / "cli").glob("*.py")):
        lines = [m.group(1) for m in re.finditer(r"^\s+(tts [^\n]+|echo [^\n]+\| tts [^\n]+)$", path.read_text(), re.M)]
        if lines:
            out.append((f"--help of cli/{path.name}", lines))
    return out


def runnable(lines: list[str]) -> list[str]:
    return [line for line in lines if line.lstrip().startswith(("tts ", "echo ", "printf ")) and not SKIP.search(line)]


# A block with nothing runnable here (only pip, pull, serve, --ray lines) is no test at all.
BLOCKS = [(where, runnable(lines)) for where, lines in readme_blocks() + help_blocks() if runnable(lines)]


# The names the examples train a head under (`train-prm ... --out NAME`), used by the lines after.
TRAINED = sorted({m.group(1) for _, lines in BLOCKS for line in lines
                  for m in [re.search(r"train-prm .*--out (\S+)", line)] if m})


def test_the_examples_are_found():
    """The parsing above finds the README's commands (an empty list would pass every test)."""
    assert len(BLOCKS) >= 8
    assert any("tts grade" in line for _, lines in BLOCKS for line in lines)


@pytest.fixture(scope="module")
def head_file(tmp_path_factory, tiny_model) -> Path:
    """A value head for the tiny model, registered under the names the train-prm examples train (the
    tiny model cannot learn anything: those examples are allowed their one-line "nothing to learn")."""
    from tts_cli.engine import Model
    path = tmp_path_factory.mktemp("head") / "head.npz"
    np.savez(path, weight=np.full(Model(tiny_model).n_embd, 0.01, np.float32), bias=np.zeros(1, np.float32))
    return path


@pytest.mark.parametrize("where,lines", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_every_example_runs(where, lines, head_file, tiny_model, tmp_path):
    """Each block in a folder of its own with what a clone has that the examples name (recipes/),
    as a user who copies one block has."""
    import os
    workdir = tmp_path / "clone"
    shutil.copytree(REPO / "recipes", workdir / "recipes")
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "tts_cli"
    config.mkdir(parents=True, exist_ok=True)
    if not (config / "models.yaml").exists():
        (config / "models.yaml").write_text("models:\n" + "".join(
            f"  - name: {name}\n    role: prm\n    params: 1e5\n    path: {tiny_model}\n"
            f"    prm: {{format: value_head, head_file: {head_file}}}\n" for name in TRAINED))
    for line in lines:
        r = subprocess.run(["bash", "-c", WRAPPER + line], cwd=workdir, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "TINY": str(tiny_model)})
        trained_nothing = "train-prm" in line and "same label" in r.stderr
        assert r.returncode == 0 or trained_nothing, f"{where}: `{line}` failed:\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, f"{where}: `{line}`:\n{r.stderr[-2000:]}"
