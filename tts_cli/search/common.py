"""What every strategy shares: the prompt, the tree, stepping paths, scoring, and answers.

A strategy keeps a list of `Path`s (an engine sequence and the tree node it has reached) and
calls `Run.step(paths)` to generate every path's next step in one batched engine call,
`Run.score(nodes)` to have the verifier score new steps, and `Run.prune` / `Run.finish` to record
what it decided. `Run.result` turns the finished paths into a SearchResult.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..engine import Sampling, Sequence
from ..engine.chat import few_shot_prompt, render_chat
from ..grading import answers_match, extract_answer, has_boxed_answer
from ..verifiers.base import StepToScore, Verifier
from .types import Candidate, Event, EventHandler, Node, SearchConfig, SearchResult


@dataclass(eq=False)
class Path:
    seq: Sequence
    node: Node


def aggregate(scores: list[float], how: str) -> float | None:
    if not scores:
        return None
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "avg":
        return sum(scores) / len(scores)
    if how == "prod":
        return math.prod(scores)
    raise ValueError(f"unknown aggregation {how!r}")


class Run:
    def __init__(self, strategy: str, problem: str, engine, verifier: Verifier | None,
                 config: SearchConfig, on_event: EventHandler | None = None):
        config.validate(strategy)
        self.strategy = strategy
        self.problem = problem
        self.engine = engine
        self.verifier = verifier
        self.config = config
        self.on_event = on_event
        self.tree: list[Node] = [Node(id=0, parent=None, depth=0, step="", state="root")]
        self.finished: list[Node] = []
        self.logprobs: dict[int, list[float]] = {}
        has_template = getattr(engine.model, "chat_template", None) is not None
        self.few_shot = config.prompt == "few-shot" or (config.prompt == "auto" and not has_template)
        self._t0 = time.perf_counter()
        self._policy_before = _snapshot(engine)
        self._verifier_before = _snapshot(verifier)
        if verifier is not None:
            verifier.begin(problem)

    # --- sampling settings ---------------------------------------------------------------
    def sampling(self, greedy: bool = False) -> Sampling:
        c = self.config
        return Sampling(temperature=0.0 if greedy else c.temperature, top_p=c.top_p, top_k=c.top_k, seed=c.seed)

    def prompt(self) -> str:
        if self.few_shot:
            return few_shot_prompt(self.problem)  # worked examples in plain text, not instructions
        messages = []
        if self.config.system_prompt:
            messages.append({"role": "system", "content": self.config.system_prompt})
        messages.append({"role": "user", "content": self.problem})
        return render_chat(self.engine.model, messages)

    def start(self, greedy: bool = False) -> Path:
        """The root path: the prompt, prefilled once."""
        return Path(self.engine.start(self.prompt(), self.sampling(greedy), cache=True), self.tree[0])

    def spread(self, path: Path, k: int) -> list[Path]:
        """k paths continuing `path`: the path itself and k-1 forks sharing its KV cache."""
        if k < 1:
            self.release([path])
            return []
        return [path] + [Path(seq, path.node) for seq in self.engine.fork(path.seq, k - 1)]

    def release(self, paths: list[Path]) -> None:
        for p in paths:
            self.engine.release(p.seq)

    # --- the tree --------------------------------------------------------------------------
    def emit(self, kind: str, nodes: list[Node]) -> None:
        if self.on_event and nodes:
            self.on_event(Event(kind=kind, nodes=nodes, tree=self.tree))

    def path_nodes(self, node: Node) -> list[Node]:
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.tree[node.parent]
        return out[::-1]

    def path_score(self, path: Path) -> float:
        """The path's step scores aggregated as configured (0 when nothing is scored)."""
        scores = [n.score for n in self.path_nodes(path.node) if n.score is not None]
        return aggregate(scores, self.config.aggregation) or 0.0

    def path_text(self, node: Node) -> str:
        return "".join(n.step for n in self.path_nodes(node))

    # --- stepping ----------------------------------------------------------------------------
    def step(self, paths: list[Path]) -> list[Node]:
        """Generate the next step of every path together; each path moves to its new node.
        Nodes that end their path are marked finished (not yet recorded as candidates)."""
        if not paths:
            return []
        c = self.config
        steps = self.engine.generate([p.seq for p in paths], stop=[c.step_delimiter], max_tokens=c.max_step_tokens)
        nodes = []
        for p, st in zip(paths, steps):
            node = Node(id=len(self.tree), parent=p.node.id, depth=p.node.depth + 1, step=st.text,
                        tokens=len(st.tokens))
            self.logprobs[node.id] = st.logprobs  # for the confidence verifier
            self.tree.append(node)
            reason = self.finish_reason(node, st.stop_reason)
            if reason:
                node.state, node.reason = "finished", reason
            p.node = node
            nodes.append(node)
        self.emit("expand", nodes)
        return nodes

    def finish_reason(self, node: Node, stop_reason: str) -> str | None:
        if stop_reason in ("eos", "context"):
            return stop_reason
        if self.few_shot and "Question:" in node.step:
            return "eos"  # the model moves on to a question of its own: its answer is over
        if has_boxed_answer(node.step):
            return "boxed"
        if stop_reason == "length":  # a step that never reached its delimiter: a runaway path
            return "length"
        if node.depth >= self.config.max_steps:
            return "max_steps"
        return None

    def score(self, nodes: list[Node]) -> None:
        """Verifier scores for new steps (incremental: each extends its parent's state)."""
        if self.verifier is None or not nodes:
            return
        items = [StepToScore(node_id=n.id, parent_id=n.parent, text=n.step,
                             logprobs=self.logprobs.get(n.id, [])) for n in nodes]
        for n, s in zip(nodes, self.verifier.score(self.problem, items)):
            n.score = s
        self.emit("score", nodes)

    def prune(self, paths: list[Path], reason: str) -> None:
        for p in paths:
            p.node.state, p.node.reason = "pruned", reason
        self.release(paths)
        if self.verifier is not None:
            self.verifier.forget([p.node.id for p in paths])
        self.emit("prune", [p.node for p in paths])

    def finish(self, paths: list[Path]) -> None:
        """Record finished paths as candidates and free their sequences."""
        for p in paths:
            if p.node.state != "finished":
                p.node.state, p.node.reason = "finished", p.node.reason or "max_steps"
            p.node.answer = extract_answer(self.path_text(p.node)).answer
            self.finished.append(p.node)
        self.release(paths)
        if self.verifier is not None:
            self.verifier.forget([p.node.id for p in paths])
        self.emit("finish", [p.node for p in paths])

    def forget_scores(self, node_ids: list[int]) -> None:
        """The verifier may drop its state for nodes no path will extend."""
        if self.verifier is not None:
            self.verifier.forget(node_ids)

    # --- answers -----------------------------------------------------------------------------
    def candidates(self) -> list[Candidate]:
        out = []
        for node in self.finished:
            nodes = self.path_nodes(node)
            scores = [n.score for n in nodes if n.score is not None]
            extracted = extract_answer("".join(n.step for n in nodes))
            out.append(Candidate(node_id=node.id, steps=[n.step for n in nodes], step_scores=scores,
                                 score=aggregate(scores, self.config.aggregation),
                                 answer=extracted.answer, answer_method=extracted.method,
                                 finish_reason=node.reason))
        return out

    def result(self, select: str) -> SearchResult:
        """select: "majority" (most frequent), "vote" (PRM-Vote), "max" (PRM-Max), "single"."""
        candidates = self.candidates()
        votes = group_answers(candidates)
        answer = choose_answer(candidates, votes, select)
        notes = []
        if any(c.answer_method not in (None, "boxed") for c in candidates):
            notes.append("some candidates had no \\boxed{} answer: a fallback extraction was used")
        return SearchResult(problem=self.problem, strategy=self.strategy, config=self.config.as_dict(),
                            answer=answer, candidates=candidates, tree=self.tree, votes=votes,
                            compute=self.compute(), verifier=getattr(self.verifier, "name", None),
                            notes=notes)

    def compute(self) -> dict:
        policy = _delta(self._policy_before, _snapshot(self.engine))
        verifier = _delta(self._verifier_before, _snapshot(self.verifier))
        flops = policy.get("flops", 0.0) + verifier.get("flops", 0.0)
        out = {"policy": policy, "seconds": round(time.perf_counter() - self._t0, 3), "flops": flops}
        if verifier:
            out["verifier"] = verifier
        return out


def group_answers(candidates: list[Candidate]) -> dict[str, dict]:
    """Equivalent answers in one group, keyed by the first spelling seen."""
    groups: dict[str, dict] = {}
    for c in candidates:
        if c.answer is None:
            continue
        key = next((k for k in groups if answers_match(c.answer, k)), c.answer)
        g = groups.setdefault(key, {"count": 0, "score": 0.0, "best": None})
        g["count"] += 1
        if c.score is not None:
            g["score"] += c.score
            g["best"] = c.score if g["best"] is None else max(g["best"], c.score)
    return groups


def choose_answer(candidates: list[Candidate], votes: dict[str, dict], select: str) -> str | None:
    if not votes:
        return None
    if select == "max":  # PRM-Max: the answer of the best-scored path
        best = max((c for c in candidates if c.answer is not None), key=lambda c: (c.score or 0.0))
        return next(k for k in votes if answers_match(best.answer, k))
    if select == "vote":  # PRM-Vote: the largest summed score
        return max(votes, key=lambda k: (votes[k]["score"], votes[k]["count"]))
    # majority (and a single path): the most frequent; ties go to the first seen
    return max(votes, key=lambda k: votes[k]["count"])


def _snapshot(obj) -> dict:
    stats = getattr(obj, "stats", None)
    if stats is None:
        return {}
    if callable(stats):
        stats = stats()
    return stats.as_dict() if stats is not None else {}


def _delta(before: dict, after: dict) -> dict:
    if not after:
        return {}
    out = {}
    for k, v in after.items():
        if k == "n_params":
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = round(v - before.get(k, 0), 4) if isinstance(v, float) else v - before.get(k, 0)
    return out
