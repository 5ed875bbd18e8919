"""From a finished search to what an OpenAI response holds: the choices (the best distinct
answers, each with its best path's text), the usage and the `tts` field."""

from __future__ import annotations

from dataclasses import dataclass

from ..answers import answers_match
from ..search import Candidate, SearchResult

# A path that ended on its own (end of text, a boxed answer) stopped; one cut by a limit (its
# step's tokens, the steps, the context) ran out of length, as OpenAI's finish_reason says.
_STOPPED = ("eos", "boxed")


@dataclass
class Choice:
    index: int
    steps: list[str]  # the path's steps (a stream sends one content delta each)
    finish_reason: str  # "stop" or "length"
    answer: str | None

    @property
    def text(self) -> str:
        return "".join(self.steps)


def ranked_answers(result: SearchResult) -> list[str]:
    """The distinct answers, best first, by the strategy's own ranking: the answer it chose,
    then the others by what chose it: votes (majority; ties by summed score), summed path scores
    (PRM-Vote, deepconf's confidence-weighted vote) or the best path score (PRM-Max)."""
    votes = result.votes
    scored = any(v.get("best") is not None for v in votes.values())
    if not scored:
        key = lambda a: (votes[a]["count"], votes[a]["score"])  # noqa: E731
    elif result.config.get("selection") == "max":
        key = lambda a: (votes[a]["best"] or 0.0, votes[a]["score"])  # noqa: E731
    else:
        key = lambda a: (votes[a]["score"], votes[a]["count"])  # noqa: E731
    # the chosen answer's group (auto's answer may be spelled as in its second stage)
    chosen = next((a for a in votes if result.answer is not None and answers_match(result.answer, a)), None)
    rest = sorted((a for a in votes if a != chosen), key=key, reverse=True)  # stable: first seen wins ties
    return ([chosen] if chosen is not None else []) + rest


def best_path(candidates: list[Candidate], answer: str | None) -> Candidate | None:
    """The highest-scored path with this answer (None: among all paths); ties go to the first."""
    mine = [c for c in candidates if (answer is None or (c.answer is not None and answers_match(c.answer, answer)))]
    if not mine:
        return None
    return max(mine, key=lambda c: c.score if c.score is not None else float("-inf"))


def choices_of(result: SearchResult, n: int) -> list[Choice]:
    """Up to n choices, one per distinct answer (fewer when the search found fewer). A search
    that found no answer at all gives one choice: its best path's text, or nothing."""
    out = []
    for answer in ranked_answers(result)[:n]:
        path = best_path(result.candidates, answer)
        out.append(Choice(len(out), path.steps, finish_reason(path), answer))
    if not out:
        path = best_path(result.candidates, None)
        out.append(Choice(0, path.steps if path else [], finish_reason(path) if path else "length", None))
    return out


def finish_reason(path: Candidate) -> str:
    return "stop" if path.finish_reason in _STOPPED else "length"


def usage_of(result: SearchResult) -> dict:
    """What the search spent on the policy: prompt_tokens are the tokens it read without sampling
    (the prompt, less what the prompt cache already held), completion_tokens every token sampled
    on every path (not only the returned text's)."""
    policy = result.compute.get("policy", {})
    prompt, completion = policy.get("tokens_prefilled", 0), policy.get("tokens_generated", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tts_field(result: SearchResult, tree: bool) -> dict:
    """The search in a response: everything `tts solve --json` prints (answer, votes, candidates
    with their scores, compute with FLOPs, config, notes) but the problem, and the tree only when
    asked for."""
    out = result.as_dict()
    out.pop("problem", None)
    if not tree:
        out.pop("tree", None)
    return out
