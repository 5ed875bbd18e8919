"""PRMs whose score comes from a head on the model's final hidden states, not from token logits.

llama.cpp runs the transformer (a context with embeddings on and pooling none) and returns the
hidden state at each step's end; the head, stored in an .npz file beside the GGUF, is applied
here in numpy.

- value_head (Skywork-o1-Open-PRM): sigmoid(w . h + b) at the newline closing each step; the
  input is "{problem}\\n{step1}\\n{step2}\\n...". npz arrays: `weight` (hidden,) or (1, hidden),
  `bias` (1,).
- policy_head (`tts train-prm --features policy`): a value head on the policy's own model, read
  from the policy's decode (PolicyHeadPRM): no context of its own. npz arrays as value_head.
- classification_head (Qwen2.5-Math-PRM): Linear(h, h), ReLU, Linear(h, 2), softmax, P(class 1)
  at the `<extra_0>` token after each step, inside the model's chat template. npz arrays:
  `w1` (hidden, hidden), `b1` (hidden,), `w2` (2, hidden), `b2` (2,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine import Engine, EngineError, Sequence, Stats
from ..engine.chat import render_chat
from .base import StepToScore, Verifier
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
    needed = {"value_head": ("weight", "bias"), "policy_head": ("weight", "bias"),
              "classification_head": ("w1", "b1", "w2", "b2")}[kind]
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


class PolicyHeadPRM(Verifier):
    """A value head on the policy's own model, applied to the hidden states the policy's decode
    already computed (a policy engine made with hidden=True): no context of its own, no second
    read of any text.

    A step's feature is `Step.hidden`: the final hidden state (after the output norm) of the row
    the step's last token was sampled from, that is at the token just before the step's
    delimiter (or, for a path that ends with end-of-generation, at its last text token), in the
    policy's prompt and format. `tts train-prm --features policy` fits the head on exactly these
    states. Its compute: sigmoid(w . h + b), 2 x (n_embd + 1) FLOPs a step, counted per search
    as engines count theirs (Stats with the head as the parameters and a step as a token)."""

    kind = "policy_head"

    def __init__(self, head: dict[str, np.ndarray], *, name: str, n_embd: int):
        self.weight = head["weight"].reshape(-1)
        self.bias = float(head["bias"].reshape(-1)[0])
        self.name = name
        if self.weight.size != n_embd:
            raise EngineError(f"{name}: its head has {self.weight.size} weights, the policy's hidden size is {n_embd}")
        self.usage: dict[object, Stats] = {}  # search key -> the head's compute for it

    def score(self, items: list[StepToScore]) -> list[float]:
        if not items:
            return []
        if all(it.hidden is None for it in items):
            raise EngineError(f"{self.name}: a policy head scores steps as the policy samples them, from its hidden "
                              "states; these steps come without them (stored results cannot be rescored with it)")
        # A path that ended on a full context before sampling anything has no state: it scores 0.
        rows = [i for i, it in enumerate(items) if it.hidden is not None]
        h = np.stack([items[i].hidden for i in rows]).astype(np.float32)
        scores = [0.0] * len(items)
        for i, s in zip(rows, (1.0 / (1.0 + np.exp(-(h @ self.weight + self.bias)))).tolist()):
            scores[i] = s
        for it in items:
            u = self.usage.setdefault(it.key[0], Stats(n_params=self.weight.size + 1))
            u.tokens_evaluated += 1
        return scores

    def take_usage(self, search_key):
        return self.usage.pop(search_key, None)


HEAD_FORMATS = {"value_head": ValueHeadPRM, "classification_head": ClassificationHeadPRM}
POLICY_HEAD = PolicyHeadPRM.kind
