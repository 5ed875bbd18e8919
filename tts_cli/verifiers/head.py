"""PRMs whose score comes from a head on the model's final hidden states, not from token logits.

llama.cpp runs the transformer (a context with embeddings on and pooling none) and returns the
hidden state at each step's end; the head, stored in an .npz file beside the GGUF, is applied
here in numpy.

- value_head (Skywork-o1-Open-PRM): sigmoid(w . h + b) at the newline closing each step; the
  input is "{problem}\\n{step1}\\n{step2}\\n...". npz arrays: `weight` (hidden,) or (1, hidden),
  `bias` (1,).
- classification_head (Qwen2.5-Math-PRM): Linear(h, h), ReLU, Linear(h, 2), softmax, P(class 1)
  at the `<extra_0>` token after each step, inside the model's chat template. npz arrays:
  `w1` (hidden, hidden), `b1` (hidden,), `w2` (2, hidden), `b2` (2,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine import Engine, EngineError, Sequence
from ..engine.chat import render_chat
from .token_logit import IncrementalVerifier

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def load_head(path: str | Path, kind: str) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path) as data:
            arrays = {k: data[k].astype(np.float32) for k in data.files}
    except FileNotFoundError:
        raise EngineError(f"{path}: head file does not exist")
    except (OSError, ValueError) as e:
        raise EngineError(f"{path}: not a readable .npz head file ({e})")
    needed = {"value_head": ("weight", "bias"), "classification_head": ("w1", "b1", "w2", "b2")}[kind]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise EngineError(f"{path}: head file lacks {', '.join(missing)} (a {kind} needs {', '.join(needed)})")
    return arrays


class HeadPRM(IncrementalVerifier):
    kind = ""

    def __init__(self, engine: Engine, head: dict[str, np.ndarray], *, name: str, incremental: bool = True):
        if not engine.ctx.embeddings:
            raise EngineError("a head PRM needs an engine created with embeddings=True")
        self.head, self.name = head, name
        super().__init__(engine, incremental)
        self._check_shapes()

    def _check_shapes(self) -> None:
        h = self.engine.model.n_embd
        for key, arr in self.head.items():
            if h not in arr.shape and arr.size > 2:
                raise EngineError(f"{self.name}: head array {key} has shape {arr.shape}, the model's hidden size is {h}")

    def apply(self, hidden: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def read(self, seqs: list[Sequence]) -> list[float]:
        return self.apply(self.engine.hidden_states(seqs)).tolist()


class ValueHeadPRM(HeadPRM):
    kind = "value_head"

    def prefix(self, problem: str) -> str:
        return problem.strip() + "\n"

    def delta(self, problem: str, steps: list[str]) -> str:
        return steps[-1].strip() + "\n"

    def apply(self, hidden: np.ndarray) -> np.ndarray:
        w = self.head["weight"].reshape(-1)
        b = float(self.head["bias"].reshape(-1)[0])
        return 1.0 / (1.0 + np.exp(-(hidden @ w + b)))


class ClassificationHeadPRM(HeadPRM):
    kind = "classification_head"

    def __init__(self, engine: Engine, head: dict[str, np.ndarray], *, name: str, step_token: str = "<extra_0>",
                 incremental: bool = True):
        self.step_token = step_token
        super().__init__(engine, head, name=name, incremental=incremental)

    def prefix(self, problem: str) -> str:
        return render_chat(self.engine.model, [{"role": "system", "content": QWEN_PRM_SYSTEM},
                                               {"role": "user", "content": problem.strip()}])

    def delta(self, problem: str, steps: list[str]) -> str:
        return steps[-1].strip() + self.step_token

    def apply(self, hidden: np.ndarray) -> np.ndarray:
        x = np.maximum(hidden @ self.head["w1"].T + self.head["b1"], 0.0)
        logits = x @ self.head["w2"].T + self.head["b2"]
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p[:, 1] / p.sum(axis=1)


HEAD_FORMATS = {"value_head": ValueHeadPRM, "classification_head": ClassificationHeadPRM}
