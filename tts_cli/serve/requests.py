"""From an OpenAI request to a search: which strategy and budget (the `model` name or the `tts`
options), the problem and system prompt (the messages), checked by the settings code of
`tts solve` and against the server's limits.

Precedence, lowest first: the server's defaults (its flags and recipe), the model name's preset
(`tts-beam-16`), OpenAI's own temperature / top_p / seed, then the `tts` object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..datasets import MAX_PROBLEM_CHARS
from ..search import NEEDS_VERIFIER, SearchConfig
from ..search.capacity import slots_needed
from ..settings import (DRAW_SEED, MODEL_KEYS, SEARCH_KEYS, STRATEGY_NAMES, RunSettings, SettingsError, build_search,
                        draw_seed, with_seed)
from .errors import APIError, bad_request
from .schema import ChatRequest, CompletionRequest
from .settings import ServeSettings

DEFAULT_MODEL = "tts"  # the server's default search, whatever its policy is called
ALIAS_BUDGETS = (4, 16)  # the tts-STRATEGY-N names /v1/models lists (any N is accepted)
_ALIAS = re.compile(r"^tts-(?P<strategy>.+?)(?:-(?P<n>\d+))?$")
# `tts` keys that are not search settings: how the answer is shaped, and the verifier check
OWN_KEYS = ("strategy", "prm", "budget", "tree")
SERVER_ONLY = ("profile",) + tuple(MODEL_KEYS)  # a request cannot name files or resize engines


@dataclass
class SearchPlan:
    """One request's search, ready for the scheduler, and how its answer is returned."""

    problem: str
    strategy: str
    config: SearchConfig
    model: str  # the name the request used (responses echo it)
    choices: int = 1  # OpenAI's n: distinct answers returned
    tree: bool = False  # the whole search tree in the `tts` field
    notes: list[str] = field(default_factory=list)


class Planner:
    """Turns requests into SearchPlans for one server: its default settings, its verifier, its
    model names and its limits (the engine's sequence slots among them)."""

    def __init__(self, defaults: RunSettings, limits: ServeSettings, *, policy_names: list[str],
                 verifier: str | None, verifier_names: tuple[str, ...] = (), engine_slots: int):
        self.defaults = defaults
        self.limits = limits
        self.policy_names = [DEFAULT_MODEL] + [p for p in dict.fromkeys(policy_names) if p]
        self.verifier = verifier  # the verifier loaded at startup (None: none)
        self.verifier_names = {verifier, *verifier_names} if verifier else set()  # its spec, its name
        self.engine_slots = engine_slots
        self.max_n = limits.max_request_n

    # --- model names ----------------------------------------------------------------------------
    def usable(self, strategy: str) -> bool:
        return strategy not in NEEDS_VERIFIER or self.verifier is not None

    def model_names(self) -> list[tuple[str, dict]]:
        """(name, the search it runs) for /v1/models: the policy's names (the server's defaults),
        then tts-STRATEGY (the default budget) and tts-STRATEGY-N for a few budgets that fit."""
        default = {"strategy": self.defaults.strategy, "n": self.defaults.search.n}
        out = [(name, default) for name in self.policy_names]
        for s in STRATEGY_NAMES:
            if not self.usable(s):
                continue
            out.append((f"tts-{s}", {"strategy": s, "n": self.defaults.search.n}))
            if s != "cot":
                out += [(f"tts-{s}-{n}", {"strategy": s, "n": n}) for n in ALIAS_BUDGETS
                        if n <= self.max_n and slots_needed(s, SearchConfig(n=n)) <= self.engine_slots]
        return out

    def preset(self, model: str) -> dict:
        """The search values a model name stands for ({} for the defaults); 404 for a name this
        server does not have."""
        if model in self.policy_names:
            return {}
        m = _ALIAS.match(model)
        if m and m["strategy"] in STRATEGY_NAMES:
            return {"strategy": m["strategy"], **({"n": int(m["n"])} if m["n"] else {})}
        raise APIError(404, f"the model {model!r} does not exist on this server; GET /v1/models lists its names "
                            f"({', '.join(self.policy_names)}, tts-STRATEGY or tts-STRATEGY-N)",
                       param="model", code="model_not_found")

    # --- requests -------------------------------------------------------------------------------
    def chat(self, body: ChatRequest) -> SearchPlan:
        """The problem is the last user message; system (and developer) messages are the system
        prompt (none: the server's)."""
        users = [m for m in body.messages if m.role == "user"]
        if not users or not users[-1].text().strip():
            raise bad_request("no user message with text: the problem is the last user message", "messages")
        system = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer") and m.text())
        return self.plan(body, users[-1].text(), system or None)

    def completion(self, body: CompletionRequest) -> SearchPlan:
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise bad_request(f"one prompt per request (got {len(prompts)})", "prompt")
        if not prompts[0].strip():
            raise bad_request("the prompt is empty", "prompt")
        return self.plan(body, prompts[0], None)

    def plan(self, body: ChatRequest | CompletionRequest, problem: str, system: str | None) -> SearchPlan:
        values, source = {}, {}  # setting -> value, and where it came from (errors name it)

        def put(key: str, value: Any, where: str) -> None:
            values[key], source[key] = value, where

        for key, value in self.preset(body.model).items():
            put(key, value, "model")
        for key in ("temperature", "top_p", "seed"):
            if getattr(body, key) is not None:
                put(key, getattr(body, key), key)
        options, tree = self.tts_options(body.tts or {})
        for key, value in options.items():
            put(key, value, f"tts.{key}")
        if system is not None:
            put("system_prompt", system, "messages")
        settings = self.validated(values, source)
        self.check_limits(settings, source)
        notes = []
        if len(problem) > MAX_PROBLEM_CHARS:
            notes.append(f"problem text of {len(problem)} characters cut to {MAX_PROBLEM_CHARS}")
            problem = problem[:MAX_PROBLEM_CHARS]
        if settings.search.seed == DRAW_SEED:
            settings = with_seed(settings, draw_seed())
        return SearchPlan(problem.strip(), settings.strategy, settings.search, body.model, body.n, tree, notes)

    def tts_options(self, tts: dict) -> tuple[dict, bool]:
        """The `tts` object's search values (keys as the flags, dashes or underscores; `budget`
        is n) and whether the tree is asked for. Unknown keys, server settings and a verifier
        other than the server's are 400s naming the key."""
        out, tree = {}, False
        for raw, value in tts.items():
            key = str(raw).replace("-", "_")
            if key == "budget":
                if "n" in {str(k).replace("-", "_") for k in tts}:
                    raise bad_request("give n or budget (the same thing), not both", "tts.budget")
                key = "n"
            if key == "tree":
                if not isinstance(value, bool):
                    raise bad_request(f"expected true or false, got {value!r}", "tts.tree")
                tree = value
            elif key == "prm":
                self.check_verifier(value)
            elif key in SERVER_ONLY:
                raise bad_request(f"{raw!r} is the server's setting (tts serve --{key.replace('_', '-')}), not a "
                                  "request's", f"tts.{raw}")
            elif key in SEARCH_KEYS or key == "strategy":
                out[key] = value
            else:
                known = sorted(set(SEARCH_KEYS) - set(SERVER_ONLY)) + list(OWN_KEYS)
                raise bad_request(f"unknown option {raw!r} (known: {', '.join(sorted(known))})", f"tts.{raw}")
        return out, tree

    def check_verifier(self, prm: Any) -> None:
        """The verifier is loaded once, at startup: a request may name it, not change it."""
        if self.verifier is None:
            raise bad_request(f"this server has no verifier (asked for {prm!r}); start tts serve with --prm",
                              "tts.prm")
        if not isinstance(prm, str) or prm not in self.verifier_names:
            raise bad_request(f"this server's verifier is {self.verifier!r} (loaded at startup), not {prm!r}: "
                              "leave prm out or ask for that one", "tts.prm")

    def validated(self, values: dict, source: dict) -> RunSettings:
        """The settings code of tts solve (types, ranges, combinations), errors naming the field
        as the request spelled it."""
        asked = []

        def where(name: str) -> str:
            asked.append(source.get(name, f"tts.{name}"))
            return asked[-1]

        strategy = values.pop("strategy", self.defaults.strategy)
        try:
            settings = build_search(self.defaults, strategy, values, where)
        except SettingsError as e:
            raise bad_request(str(e), asked[-1] if asked else "tts")
        if not self.usable(settings.strategy):
            raise bad_request(f"{settings.strategy} needs a verifier and this server has none (start tts serve "
                              "with --prm judge, confidence or a PRM)", source.get("strategy", "tts.strategy"))
        return settings

    def check_limits(self, settings: RunSettings, source: dict) -> None:
        """The server's caps on what a request asks for (its own defaults are the operator's),
        and the engine's size on every search."""
        s, cfg = settings.strategy, settings.search
        caps = (("n", cfg.n, self.max_n, "--max-request-n"),
                ("max_steps", cfg.max_steps, self.limits.max_request_steps, "--max-request-steps"),
                ("max_step_tokens", cfg.max_step_tokens, self.limits.max_request_step_tokens,
                 "--max-request-step-tokens"))
        for key, value, cap, flag in caps:
            if key in source and value > cap:
                raise bad_request(f"{key} is at most {cap} on this server ({flag}), got {value}",
                                  source.get(key, f"tts.{key}"))
        need = slots_needed(s, cfg)
        if need > self.engine_slots:
            raise bad_request(f"{s} with n={cfg.n} holds {need} sequences at once; this server's engine holds "
                              f"{self.engine_slots} (tts serve's --n and --concurrency size it)",
                              source.get("n", "tts.n"))
