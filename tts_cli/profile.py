"""Compute-optimal profiles: for each (difficulty bin, budget), the search setting that was
measured best for one policy and verifier. Written by `tts calibrate`, read by `--strategy auto`.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .difficulty import BIN_NAMES, Bins

PROFILE_VERSION = 1

Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Budget = Annotated[int, Field(ge=1, strict=True)]


class ProfileError(Exception):
    """A missing or malformed profile; the message names the file (and line)."""


@dataclass
class Choice:
    bin: Literal["easy", "medium", "hard"]
    budget: Budget
    # what auto's second stage can run (auto itself is not among them)
    strategy: Literal["cot", "majority", "best-of-n", "beam", "dvts"]
    accuracy: Share
    flops: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]  # mean per problem
    problems: Annotated[int, Field(ge=0, strict=True)]
    beam_width: Optional[Budget] = None
    selection: Optional[Literal["vote", "max"]] = None
    aggregation: Optional[Literal["last", "min", "avg", "prod"]] = None
    temperature: Optional[Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]] = None  # None: the search's
    pass_at_n: Optional[Share] = None  # share of problems with any right candidate (the verifier's ceiling)

    def settings(self) -> dict:
        """Search options that reproduce this choice."""
        out = {"strategy": self.strategy, "n": self.budget}
        for k in ("beam_width", "selection", "aggregation", "temperature"):
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
        }
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        """A profile file, every value validated (ProfileError: file:line: field: what is wrong)."""
        from .yamlfile import invalid, read_yaml_lines
        path = Path(path)
        data, lines = read_yaml_lines(path, "profile (make one with `tts calibrate`)", ProfileError)
        if not isinstance(data, dict) or data.get("tts_profile") != PROFILE_VERSION:
            raise ProfileError(f"{path}: not a tts profile (expected 'tts_profile: {PROFILE_VERSION}' at the top)")
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
                   meta=parsed.meta)


class ProfileFile(BaseModel):
    """What a profile YAML holds (`tts schema profile` prints its JSON schema)."""

    model_config = ConfigDict(extra="allow")

    tts_profile: Literal[1]
    created: Optional[str] = None
    policy: dict = Field(default_factory=dict, description="The policy it was measured for: name, file, params.")
    prm: Optional[str] = Field(None, description="The verifier it was measured with.")
    bins: dict[str, Share] = Field(default_factory=dict, description="Difficulty bin bounds on pass@1: easy, medium.")
    choices: list[Choice] = Field(min_length=1, description="Per (difficulty bin, budget): the setting chosen.")
    frontier: list[dict] = Field(default_factory=list)
    meta: dict = Field(default_factory=dict)


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
