"""Verifiers that read two token probabilities from a language model: P(good) / (P(good) + P(bad)).

The model sees the problem and the path as text in its own format. That text is built from
pieces: a prefix (before the first step) and one delta per step, so it only ever grows. Each
scored node keeps a sequence in the verifier's engine holding its path's text; a child forks its
parent's sequence and evaluates just its own delta. Formats:

- math_shepherd: "{question} {step1} ки\\n{step2} ки"; read at each "ки".
- rlhflow: a chat, one user turn per step (the first is "{question} {step1}"), each answered
  "+" by the assistant; read where the assistant's answer starts.
- judge: any instruct model asked "is the last step correct?"; the question is appended in a
  throwaway fork, and the answer read as P("Yes") against P("No").
"""

from __future__ import annotations

import math

from ..engine import Engine, EngineError, Sampling, Sequence
from ..engine.chat import render_chat
from .base import StepToScore, Verifier

GREEDY = Sampling(temperature=0.0)


class IncrementalVerifier(Verifier):
    """Keeps one sequence per scored node; a child's text is its parent's plus a delta. Subclasses
    say what the text is (prefix, delta, query) and how a score is read at its end (`read`)."""

    def __init__(self, engine: Engine, incremental: bool = True):
        self.engine = engine
        self.incremental = incremental  # False: every score re-reads its whole path (for comparison)
        self.seqs: dict[tuple, Sequence] = {}  # (key, node id) -> sequence holding the path up to it
        self.steps: dict[tuple, list[str]] = {}  # (key, node id) -> the path's steps
        self.problems: dict[tuple, str] = {}  # key -> its problem

    # --- what subclasses define ----------------------------------------------------------
    def prefix(self, problem: str) -> str:
        """Text before the first step ("" when the first step's delta carries everything)."""
        raise NotImplementedError

    def delta(self, problem: str, steps: list[str]) -> str:
        """Text that appends the last of `steps` to the text of the ones before it."""
        raise NotImplementedError

    def query(self) -> str:
        """Text appended in a throwaway fork before reading (empty: read right after the delta)."""
        return ""

    def read(self, seqs: list[Sequence]) -> list[float]:
        """Scores at the end of each sequence (which then holds its last token)."""
        raise NotImplementedError

    # --- the machinery -------------------------------------------------------------------
    def tokens(self, text: str, first: bool) -> list[int]:
        model = self.engine.model
        bos_text = model.token_text(model.bos) if model.bos >= 0 else None
        add_special = first and not (bos_text and text.startswith(bos_text))
        return self.engine.model.tokenize(text, add_special=add_special, parse_special=True)

    def begin(self, key: tuple, problem: str) -> None:
        self.end(key)
        self.problems[key] = problem
        self.steps[(key, 0)] = []
        prefix = self.prefix(problem)
        if prefix:
            self.seqs[(key, 0)] = self.engine.start(self.tokens(prefix, first=True), GREEDY, owner=key[0])

    def score(self, items: list[StepToScore]) -> list[float]:
        if not items:
            return []
        to_extend = []
        new_seqs = []
        for it in items:
            if it.key not in self.problems:
                raise EngineError(f"verifier: search {it.key} was not begun")
            problem = self.problems[it.key]
            parent = (it.key, it.parent_id if it.parent_id is not None else 0)
            if parent not in self.steps:
                raise EngineError(f"verifier: node {parent[1]} was forgotten or never scored")
            steps = self.steps[parent] + [it.text]
            text = self.delta(problem, steps)
            if not self.incremental:
                seq = self.engine.start(self._path_tokens(problem, steps), GREEDY, owner=it.key[0])
            elif parent in self.seqs:
                seq = self.engine.fork(self.seqs[parent], 1, GREEDY)[0]
                to_extend.append((seq, self.tokens(text, first=False)))
            else:  # no prefix: the first step's delta starts the sequence
                seq = self.engine.start(self.tokens(text, first=True), GREEDY, owner=it.key[0])
            self.seqs[(it.key, it.node_id)] = seq
            self.steps[(it.key, it.node_id)] = steps
            new_seqs.append(seq)
        self.engine.extend(to_extend)
        scores = self._read(new_seqs)
        if not self.incremental:
            for it, seq in zip(items, new_seqs):
                self.engine.release(seq)
                self.seqs.pop((it.key, it.node_id), None)
        return scores

    def _path_tokens(self, problem: str, steps: list[str]) -> list[int]:
        prefix = self.prefix(problem)
        tokens = self.tokens(prefix, first=True) if prefix else []
        for j in range(1, len(steps) + 1):
            tokens += self.tokens(self.delta(problem, steps[:j]), first=not tokens)
        return tokens

    def _read(self, seqs: list[Sequence]) -> list[float]:
        query = self.query()
        if not query:
            # Read where the delta ends. The node's sequence then holds its last token too;
            # children extend it from there.
            return self.read(seqs)
        # The query is asked in throwaway forks: commit each node's last token first, so that the
        # forks and the node's later children share it rather than each evaluating it again.
        self.engine.commit(seqs)
        scores = []
        free = max(1, self.engine.free_slots)
        query_tokens = self.tokens(query, first=False)
        for i in range(0, len(seqs), free):
            forks = [self.engine.fork(s, 1, GREEDY)[0] for s in seqs[i:i + free]]
            self.engine.extend([(f, query_tokens) for f in forks])
            scores += self.read(forks)
            self.engine.release_all(forks)
        return scores

    def score_from_scratch(self, problem: str, steps: list[str]) -> list[float]:
        """The score of every step of one path, each computed in a fresh sequence holding the
        whole text up to that step: what incremental scoring must equal."""
        out = []
        for k in range(1, len(steps) + 1):
            seq = self.engine.start(self._path_tokens(problem, steps[:k]), GREEDY)
            out += self._read([seq])
            self.engine.release(seq)
        return out

    def forget(self, key: tuple, node_ids) -> None:
        for i in node_ids:
            seq = self.seqs.pop((key, i), None)
            self.steps.pop((key, i), None)
            if seq is not None:
                self.engine.release(seq)

    def end(self, key: tuple) -> None:
        self.forget(key, [n for k, n in list(self.steps) if k == key])
        self.problems.pop(key, None)

    def close(self) -> None:
        for key in list(self.problems):
            self.end(key)


class TokenLogitVerifier(IncrementalVerifier):
    """Reads P(good) / (P(good) + P(bad)) for the next token."""

    good: str = "+"
    bad: str = "-"

    def __init__(self, engine: Engine, incremental: bool = True):
        super().__init__(engine, incremental)
        self.good_id, self.bad_id = self.label_tokens()

    def label_tokens(self) -> tuple[int, int]:
        return self._last_token(self.good), self._last_token(self.bad)

    def _last_token(self, text: str) -> int:
        ids = self.engine.tokenize(text)
        if not ids:
            raise EngineError(f"{self.engine.model.path}: the tokenizer has no token for {text!r}")
        return ids[-1]

    def read(self, seqs: list[Sequence]) -> list[float]:
        rows = self.engine.next_token_logprobs(seqs, [self.good_id, self.bad_id])
        return [_two_way(g, b) for g, b in rows]


def _two_way(lp_good: float, lp_bad: float) -> float:
    m = max(lp_good, lp_bad)
    g, b = math.exp(lp_good - m), math.exp(lp_bad - m)
    return g / (g + b)


class MathShepherdPRM(TokenLogitVerifier):
    """Math-Shepherd: "{question} {step1} ки\\n{step2} ки..."; P(+) at each step tag."""

    def __init__(self, engine: Engine, *, step_tag: str = "ки", good: str = "+", bad: str = "-",
                 name: str = "math_shepherd", incremental: bool = True):
        self.step_tag, self.good, self.bad, self.name = step_tag, good, bad, name
        super().__init__(engine, incremental)

    def prefix(self, problem: str) -> str:
        return problem.strip() + " "

    def delta(self, problem: str, steps: list[str]) -> str:
        step = steps[-1].strip().replace(self.step_tag, "")
        return ("" if len(steps) == 1 else "\n") + f"{step} {self.step_tag}"


class RLHFlowPRM(TokenLogitVerifier):
    """RLHFlow PRMs: user turns are steps, the assistant answers "+"; P(+) where it answers."""

    def __init__(self, engine: Engine, *, good: str = "+", bad: str = "-", name: str = "rlhflow",
                 incremental: bool = True):
        self.good, self.bad, self.name = good, bad, name
        super().__init__(engine, incremental)

    def _render(self, problem: str, steps: list[str]) -> str:
        if not steps:
            return ""
        messages = []
        for i, step in enumerate(steps):
            content = f"{problem.strip()} {step.strip()}" if i == 0 else step.strip()
            messages.append({"role": "user", "content": content})
            if i < len(steps) - 1:
                messages.append({"role": "assistant", "content": self.good})
        return render_chat(self.engine.model, messages)

    def prefix(self, problem: str) -> str:
        return ""

    def delta(self, problem: str, steps: list[str]) -> str:
        before = self._render(problem, steps[:-1])
        now = self._render(problem, steps)
        if not now.startswith(before):
            raise EngineError(f"{self.engine.model.path}: its chat template does not extend a conversation "
                              "by appending; the rlhflow format cannot be scored incrementally")
        return now[len(before):]


JUDGE_SYSTEM = "You are a careful math teacher. You check solutions one step at a time."
JUDGE_QUESTION = ("\n\nIs the last step of the solution above correct? "
                  "Answer with a single word, Yes or No.")


class JudgeVerifier(TokenLogitVerifier):
    """Any instruct model as a step judge: P("Yes") / (P("Yes") + P("No"))."""

    good, bad = "Yes", "No"

    def __init__(self, engine: Engine, name: str = "judge", incremental: bool = True):
        self.name = name
        marker = "\u0000SOLUTION\u0000"
        text = render_chat(engine.model, [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": "Problem:\n{problem}\n\nSolution so far:\n" + marker + JUDGE_QUESTION},
        ])
        self._head, self._tail = text.split(marker)
        super().__init__(engine, incremental)

    def label_tokens(self) -> tuple[int, int]:
        # The first token of the answer, as the model would write it right after its turn starts.
        good = self.engine.tokenize(self.good)
        bad = self.engine.tokenize(self.bad)
        if not good or not bad or good[0] == bad[0]:
            raise EngineError(f"{self.engine.model.path}: cannot tell 'Yes' from 'No' with this tokenizer")
        return good[0], bad[0]

    def prefix(self, problem: str) -> str:
        return self._head.replace("{problem}", problem.strip())

    def delta(self, problem: str, steps: list[str]) -> str:
        return steps[-1]

    def query(self) -> str:
        return self._tail
