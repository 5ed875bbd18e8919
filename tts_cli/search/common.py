"""What every strategy shares: the prompt, the tree, stepping paths, scoring, and answers.

A strategy is a generator function `strategy(search, config)`: it keeps a list of `Path`s (an
engine sequence and the tree node it has reached) and pauses where it needs work done:
`nodes = yield from run.step(paths)` (every path's next step) and `yield from run.score(nodes)`
(verifier scores for new steps); `yield Parallel(parts)` runs independent parts of a search
(paths, subtrees) side by side, each pausing on its own. The scheduler (scheduler.py) answers
those requests for many searches at once; `Run.prune` / `Run.finish` record what the strategy
decided, and `Run.result` turns the finished paths into a SearchResult.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from ..engine import Sampling, Sequence, Step, derive_seed
from ..engine.chat import few_shot_prompt, render_chat
from ..answers import answers_match, extract_answer, has_boxed_answer
from ..verifiers.arithmetic import repaired_answer
from ..verifiers.base import StepToScore, Verifier
from ..verifiers.confidence import mean_token_probability
from .memo import StepMemo, child_key, draw_seed, root_key
from .types import AwaitDraws, Candidate, Event, EventHandler, Generate, Node, Score, SearchConfig, SearchResult


@dataclass(eq=False)
class Path:
    seq: Sequence
    node: Node
    # Steps replayed from a memo that `seq` does not hold yet (prefilled when the path next
    # needs its sequence: a step the memo lacks, a fork, a rollout).
    owed: list[Step] = field(default_factory=list)


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


class Search:
    """One search in flight: its problem, the policy engine and verifier it runs on, its key
    (owner of its sequences, its verifier state and its compute) and its stages (auto runs a
    probe, then a second strategy). Strategies get it; the scheduler creates and drives it."""

    def __init__(self, problem: str, engine, verifier: Verifier | None = None, *, key=0,
                 on_event: EventHandler | None = None, memo: StepMemo | None = None):
        self.problem = problem
        self.engine = engine
        self.verifier = verifier
        self.key = key
        self.on_event = on_event
        self.memo = memo  # draws shared with other searches (memo.py), or None
        # what the memo saved this search: steps replayed, their tokens, and the tokens of them
        # prefilled later because a path went on from them
        self.shared = Counter()
        self.stages = 0
        # Sequence slots the search may still hold at once; strategies lower it when parts of
        # the search end for good, so the scheduler can start another search in those slots.
        self.reserved = 0

    def run(self, strategy: str, config: SearchConfig, *, use_verifier: bool = True) -> "Run":
        """A new stage: its own tree, verifier state and seed stream."""
        self.stages += 1
        return Run(strategy, self, config, stage=self.stages - 1, use_verifier=use_verifier)

    def close(self) -> None:
        """Release whatever the search still holds (it ended, or failed half-way)."""
        self.engine.release_owner(self.key)
        if self.memo is not None:
            self.memo.abandon(self.key)
        if self.verifier is not None:
            for stage in range(self.stages):
                self.verifier.end((self.key, stage))


class Run:
    """One stage of a search: the tree it grows and the verbs strategies use."""

    def __init__(self, strategy: str, search: Search, config: SearchConfig, *, stage: int = 0,
                 use_verifier: bool = True):
        config.validate(strategy)
        self.strategy = strategy
        self.search = search
        self.problem = search.problem
        self.engine = search.engine
        self.verifier = search.verifier if use_verifier else None
        self.config = config
        self.on_event = search.on_event
        self.key = (search.key, stage)  # the verifier's state for this stage
        # Each stage samples from its own stream: a second stage that starts from the cached
        # prompt must not re-sample the first stage's paths.
        self.seed = config.seed if stage == 0 else derive_seed(config.seed, 1 << 20, stage)
        self.tree: list[Node] = [Node(id=0, parent=None, depth=0, step="", state="root")]
        self.finished: list[Node] = []
        self.memo = search.memo
        self.draw_keys: dict[int, bytes] = {}  # node id -> where it stands among all draws (with a memo)
        self._draws: Counter[int] = Counter()  # steps this run drew from each node
        self.logprobs: dict[int, list[float]] = {}
        self.hidden: dict = {}  # node id -> the policy's hidden state at its step's end, until scored
        has_template = getattr(self.engine.model, "chat_template", None) is not None
        self.few_shot = config.prompt == "few-shot" or (config.prompt == "auto" and not has_template)
        if self.verifier is not None:
            self.verifier.begin(self.key, self.problem)

    # --- sampling settings ---------------------------------------------------------------
    def sampling(self, greedy: bool = False) -> Sampling:
        """A path's sampler. Its first token is never end-of-generation (min_tokens=1): an empty
        path is a candidate that buys nothing (a quarter of a 135M policy's few-shot samples were
        empty before)."""
        c = self.config
        return Sampling(temperature=0.0 if greedy else c.temperature, top_p=c.top_p, top_k=c.top_k, seed=self.seed,
                        min_tokens=1)

    def prompt(self) -> str:
        if self.few_shot:
            return few_shot_prompt(self.problem)  # worked examples in plain text, not instructions
        messages = []
        if self.config.system_prompt:
            messages.append({"role": "system", "content": self.config.system_prompt})
        messages.append({"role": "user", "content": self.problem})
        return render_chat(self.engine.model, messages)

    def start(self, greedy: bool = False) -> Path:
        """The root path: the prompt, prefilled once (and cached for other searches on it)."""
        prompt = self.prompt()
        sampling = self.sampling(greedy)
        seq = self.engine.start(prompt, sampling, cache=True, owner=self.search.key)
        if self.memo is not None:  # everything a draw depends on besides the path
            c = self.config
            signature = (f"{sampling.temperature}|{c.top_p}|{c.top_k}|{self.seed}|{c.max_step_tokens}|"
                         f"{c.step_delimiter!r}")
            self.draw_keys[0] = root_key(signature, prompt)
        return Path(seq, self.tree[0])

    def spread(self, path: Path, k: int) -> list[Path]:
        """k paths continuing `path`: the path itself and k-1 forks sharing its KV cache."""
        return self.spread_each([path], [k])

    def spread_each(self, paths: list[Path], ks: list[int]) -> list[Path]:
        """`spread` of every path (paths[i] into ks[i]; 0 releases it). A path that owes replayed
        steps its forks would lack catches up first, once rather than once in every fork, and
        all such paths together in one prefill batch."""
        self.catch_up([p for p, k in zip(paths, ks) if k > 1 and p.owed and not self._memo_holds(p, k)])
        out = []
        for p, k in zip(paths, ks):
            if k < 1:
                self.release([p])
                continue
            out += [p] + [Path(seq, p.node, list(p.owed)) for seq in self.engine.fork(p.seq, k - 1)]
        return out

    def fork(self, path: Path, k: int) -> list[Path]:
        """k new paths from `path`, which stays as it is (strategies that sample in waves fork
        each wave from the root and keep it for the next)."""
        if path.owed and not self._memo_holds(path, k):
            self.catch_up([path])
        return [Path(seq, path.node, list(path.owed)) for seq in self.engine.fork(path.seq, k)]

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

    def path_tokens(self, node: Node) -> int:
        """Tokens the policy generated for the path ending at `node`."""
        return sum(n.tokens for n in self.path_nodes(node))

    # --- stepping ----------------------------------------------------------------------------
    def generate(self, seqs: list[Sequence]):
        """Ask for the next step of raw sequences (lookahead rollouts); returns engine Steps."""
        if not seqs:
            return []
        steps: list[Step] = yield Generate(list(seqs), [self.config.step_delimiter], self.config.max_step_tokens)
        return steps

    def step(self, paths: list[Path]):
        """Generate the next step of every path together; each path moves to its new node.
        Nodes that end their path are marked finished (not yet recorded as candidates)."""
        if self.memo is None:
            steps, keys = (yield from self.generate([p.seq for p in paths])), None
        else:
            steps, keys = yield from self.draw(paths)
        nodes = []
        for k, (p, st) in enumerate(zip(paths, steps)):
            node = Node(id=len(self.tree), parent=p.node.id, depth=p.node.depth + 1, step=st.text,
                        tokens=len(st.tokens))
            if keys is not None:
                self.draw_keys[node.id] = keys[k]
            self.logprobs[node.id] = st.logprobs  # for the confidence verifier
            if st.hidden is not None and self.verifier is not None:  # for a policy head
                self.hidden[node.id] = st.hidden
            self.tree.append(node)
            reason = self.finish_reason(node, st.stop_reason)
            if reason:
                node.state, node.reason = "finished", reason
            p.node = node
            nodes.append(node)
        self.emit("expand", nodes)
        return nodes

    # --- shared draws (memo.py) ----------------------------------------------------------------
    def draw(self, paths: list[Path]):
        """The next step of every path, each the run's next draw from the path's node: taken
        from the memo when some search already drew it, else generated with the draw's own seed
        (and kept there for the others); one another search is generating now is waited for.
        Returns the steps and their nodes' draw keys."""
        draws = []
        for p in paths:
            draws.append((self.draw_keys[p.node.id], self._draws[p.node.id]))
            self._draws[p.node.id] += 1
        steps: list[Step | None] = [None] * len(paths)
        while True:
            for k in range(len(paths)):
                if steps[k] is None and (st := self.memo.get(draws[k])) is not None:
                    steps[k] = st
                    paths[k].owed.append(st)
                    self.search.shared["steps"] += 1
                    self.search.shared["tokens"] += len(st.tokens)
            missing = [k for k, st in enumerate(steps) if st is None]
            if not missing:
                return steps, [child_key(*d) for d in draws]
            mine = [k for k in missing if not self.memo.is_pending(draws[k])]
            if not mine:  # all being generated by other searches right now
                yield AwaitDraws([draws[k] for k in missing])
                continue
            live = [paths[k] for k in mine]
            self.memo.claim([draws[k] for k in mine], self.search.key)
            self.catch_up(live)
            for k in mine:
                if not paths[k].seq.sampling.greedy:
                    self.engine.reseed(paths[k].seq, draw_seed(draws[k]))
            fresh = yield from self.generate([p.seq for p in live])
            for k, st in zip(mine, fresh):
                self.memo.put(draws[k], st)
                steps[k] = st

    def _memo_holds(self, path: Path, k: int) -> bool:
        """Whether the memo holds the next k draws from the path's node (its forks would then
        replay them, and need no sequence of their own yet)."""
        key, i = self.draw_keys.get(path.node.id), self._draws[path.node.id]
        return key is not None and all(self.memo.has((key, i + j)) for j in range(k))

    def catch_up(self, paths: list[Path]) -> None:
        """Prefill the replayed steps the paths' sequences do not hold yet (in shared batches)."""
        owing = [p for p in paths if p.owed]
        if not owing:
            return
        self.engine.replay([(p.seq, p.owed) for p in owing])
        for p in owing:
            self.search.shared["tokens_caught_up"] += sum(len(st.tokens) for st in p.owed)
            p.owed = []

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

    def score(self, nodes: list[Node]):
        """Verifier scores for new steps (incremental: each extends its parent's state)."""
        if self.verifier is None or not nodes:
            return
        items = [StepToScore(key=self.key, node_id=n.id, parent_id=n.parent, text=n.step,
                             logprobs=self.logprobs.get(n.id, []), hidden=self.hidden.pop(n.id, None))
                 for n in nodes]
        scores = yield from self.score_items(items)
        for n, s in zip(nodes, scores):
            n.score = s
        self.emit("score", nodes)

    def walk(self, path: Path):
        """Step one path on its own until it finishes, scoring each step when the run has a
        verifier. For strategies whose paths never interact: run as `Parallel` parts, each path
        starts its next step as soon as its last one ends, instead of waiting for the slowest."""
        while path.node.state != "finished":
            nodes = yield from self.step([path])
            yield from self.score(nodes)
            self.forget_scores([n.parent for n in nodes if n.parent != 0])  # the root serves every path
        self.finish([path])
        self.done_with_slots(1)

    def done_with_slots(self, k: int) -> None:
        """This search will never again hold k of the slots it holds now (a path or a subtree
        ended for good): the scheduler may give them to a new search."""
        self.search.reserved = max(0, self.search.reserved - k)

    def score_items(self, items: list[StepToScore]):
        """Ask the verifier for scores (answered by the scheduler, merged with other searches')."""
        if not items:
            return []
        scores: list[float] = yield Score(items)
        return scores

    def prune(self, paths: list[Path], reason: str) -> None:
        for p in paths:
            p.node.state, p.node.reason = "pruned", reason
        self.release(paths)
        self.forget_scores([p.node.id for p in paths])
        self.emit("prune", [p.node for p in paths])

    def finish(self, paths: list[Path]) -> None:
        """Record finished paths as candidates and free their sequences."""
        for p in paths:
            if p.node.state != "finished":
                p.node.state, p.node.reason = "finished", p.node.reason or "max_steps"
            p.node.answer = extract_answer(self.path_text(p.node)).answer
            self.finished.append(p.node)
        self.release(paths)
        self.forget_scores([p.node.id for p in paths])
        self.emit("finish", [p.node for p in paths])

    def forget_scores(self, node_ids: list[int]) -> None:
        """The verifier may drop its state for nodes no path will extend."""
        if self.verifier is not None:
            self.verifier.forget(self.key, node_ids)

    def saved(self, paths_not_sampled: int = 0, stopped: list[Node] = ()) -> dict:
        """What the search did not spend against sampling all N paths to their end. A full path
        is estimated at the mean generated tokens of this search's finished paths: each path
        never sampled saves one, each path stopped early what it had left of one (nothing if it
        was already longer). Policy tokens only: the verifier's tokens for them are saved too."""
        lengths = [self.path_tokens(n) for n in self.finished]
        full = sum(lengths) / len(lengths) if lengths else 0.0
        left = sum(max(0.0, full - self.path_tokens(n)) for n in stopped)
        return {"paths_not_sampled": paths_not_sampled, "paths_stopped_early": len(stopped),
                "tokens_saved_estimate": round(full * paths_not_sampled + left)}

    # --- answers -----------------------------------------------------------------------------
    def candidates(self) -> list[Candidate]:
        out = []
        for node in self.finished:
            nodes = self.path_nodes(node)
            scores = [n.score for n in nodes if n.score is not None]
            extracted = extract_answer("".join(n.step for n in nodes))
            confidence = [mean_token_probability(self.logprobs.get(n.id, [])) for n in nodes]
            out.append(Candidate(node_id=node.id, steps=[n.step for n in nodes], step_scores=scores,
                                 score=aggregate(scores, self.config.aggregation),
                                 answer=extracted.answer, answer_method=extracted.method,
                                 finish_reason=node.reason, step_confidence=confidence,
                                 tokens=self.path_tokens(node), branch=node.branch))
        return out

    def result(self, select: str) -> SearchResult:
        """select: "majority" (most frequent), "vote" (PRM-Vote), "max" (PRM-Max), "single".
        The scheduler adds the search's compute when the search ends."""
        candidates = self.candidates()
        notes = []
        if self.config.repair and (k := repair_candidates(candidates, self.config.aggregation)):
            notes.append(f"{k} candidates answer the corrected result of their last sum (--repair)")
        votes = group_answers(candidates)
        answer = choose_answer(candidates, votes, select)
        if any(c.answer_method not in (None, "boxed") for c in candidates):
            notes.append("some candidates had no \\boxed{} answer: a fallback extraction was used")
        if self.verifier is not None:
            self.verifier.end(self.key)
        return SearchResult(problem=self.problem, strategy=self.strategy, config=self.config.as_dict(),
                            answer=answer, candidates=candidates, tree=self.tree, votes=votes,
                            compute={}, verifier=getattr(self.verifier, "name", None), notes=notes)


def repair_candidates(candidates: list[Candidate], aggregation: str) -> int:
    """--repair with the arithmetic verifier: each candidate whose only false fact is its last
    sum, whose stated result is its answer, answers the sum's true result instead, and scores as
    the path with that sum written right would (its last step's path verdict is then "checked":
    1.0). Returns how many were repaired; each keeps the answer it stated in `repaired_from`."""
    repaired = 0
    for c in candidates:
        fixed = repaired_answer(c.steps, c.answer)
        if fixed is None:
            continue
        c.repaired_from, c.answer = c.answer, fixed
        if c.step_scores:
            c.step_scores = c.step_scores[:-1] + [1.0]
            c.score = aggregate(c.step_scores, aggregation)
        repaired += 1
    return repaired


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
