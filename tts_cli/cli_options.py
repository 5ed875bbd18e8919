"""The flags several `tts` commands share, declared once: each group is added to a command's
signature by `with_options`, and the command receives the values in **opts."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

O = typer.Option

# Models, prompt and the run's limits: every command that runs searches.
RUN = {
    "config": (Optional[Path], O(None, "--config", help="YAML recipe of search options (flags override it).")),
    "policy": (Optional[str], O(None, "--policy", help="Policy model: a models.yaml name or a .gguf path (default: bundled SmolLM2-135M-Instruct).")),
    "prm": (Optional[str], O(None, "--prm", help="Verifier: judge, confidence, a models.yaml PRM name, or a .gguf path (default for the strategies that need one: judge).")),
    "temperature": (Optional[float], O(None, "--temperature", help="Sampling temperature (default 0.7; cot is greedy).")),
    "max_steps": (Optional[int], O(None, "--max-steps", help="Steps per path (default 40).")),
    "max_step_tokens": (Optional[int], O(None, "--max-step-tokens", help="Tokens per step (default 256).")),
    "seed": (Optional[int], O(None, "--seed", help="Random seed (default 0): the same seed gives the same answers.")),
    "gpu_layers": (Optional[int], O(None, "--gpu-layers", help="Layers to offload to the GPU (default all; 0 = CPU).")),
    "threads": (Optional[int], O(None, "--threads", help="CPU threads (default: all cores).")),
    "models_file": (Optional[Path], O(None, "--models-file", help="Extra model registry YAML (default: ~/.config/tts_cli/models.yaml if present).")),
    "context_per_path": (Optional[int], O(None, "--context-per-path", help="KV cells per path, prompt included (default 2048).")),
    "prompt": (Optional[str], O(None, "--prompt", help="chat (the model's template), few-shot (worked examples in plain text; base models), or auto (default).")),
}

# The search itself: solve and grade (compare and calibrate choose these per run).
SEARCH = {
    "strategy": (Optional[str], O(None, "--strategy", "-s", help="cot, majority, best-of-n, beam, dvts, auto, particle-filter, majority-adaptive, best-of-n-adaptive or deepconf (default: beam); their options can be set in a --config recipe.")),
    "n": (Optional[int], O(None, "--n", help="Budget N: sampled paths or beams (default 4).")),
    "beam_width": (Optional[int], O(None, "--beam-width", "-m", help="Beam width M for beam and dvts (default 4).")),
    "top_p": (Optional[float], O(None, "--top-p", help="Nucleus sampling (default 1.0).")),
    "aggregation": (Optional[str], O(None, "--aggregation", help="Step scores to a path score: last, min, avg, prod (default last).")),
    "selection": (Optional[str], O(None, "--selection", help="vote (PRM-Vote) or max (PRM-Max) (default vote).")),
    "lookahead": (Optional[int], O(None, "--lookahead", help="Beam search lookahead steps (default 0).")),
    "profile": (Optional[Path], O(None, "--profile", help="auto: a `tts calibrate` profile (default: the one saved for this policy and --prm).")),
    "probe": (Optional[int], O(None, "--probe", help="auto: probe paths that predict the difficulty (default N/4, between 2 and 4; they count in N).")),
}

# Going over a data set: grade, compare, calibrate.
BATCH = {
    "problem_key": (Optional[str], O(None, "--problem-key", help="Field holding the problem (default: problem or question).")),
    "answer_key": (Optional[str], O(None, "--answer-key", help="Field holding the reference answer (default: answer).")),
    "limit": (Optional[int], O(None, "--limit", min=1, help="Only the first K problems.")),
    "concurrency": (str, O("auto", "--concurrency", help="Searches in flight at once, their sequences batched together: a number, or auto (fill a batch: 64 sequences on a GPU, 32 on CPU).")),
    "ray": (Optional[str], O(None, "--ray", metavar="[ADDRESS]", help="Run the searches on Ray workers: bare --ray starts a local instance (loopback only, no dashboard); --ray HOST:PORT or --ray auto joins a running cluster. Needs tts_cli[ray].")),
    "workers": (Optional[int], O(None, "--workers", min=1, help="With --ray: workers (default: one per GPU, or one per node on CPU nodes).")),
    "wait": (bool, O(False, "--wait", help="If another tts run is writing to the same results file, start when it ends (default: stop with an error).")),
}


def pick(group: dict, *names: str) -> dict:
    return {k: group[k] for k in names}


def without(group: dict, *names: str) -> dict:
    return {k: v for k, v in group.items() if k not in names}


def with_options(*groups: dict):
    """Add the groups' flags to a command (after its own parameters); Typer reads the signature,
    the command gets them in **opts."""
    def add(command):
        sig = inspect.signature(command)
        params = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
        extra = {name: spec for g in groups for name, spec in g.items()}
        params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
                   for name, (ann, default) in extra.items()]
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {**command.__annotations__, **{n: a for n, (a, _) in extra.items()}}
        return command
    return add
