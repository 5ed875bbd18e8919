"""`tts rescore`: choose again the answers of finished runs that sampled independent paths
(majority, Best-of-N) with another verifier, selection or aggregation, without generating again.

A results record keeps every candidate's steps, its step scores and the policy's confidence in
each step. Rescoring scores those steps with the verifier asked for (a model verifier reads
them, step by step, as it would during the search; `confidence` uses the recorded confidences;
`arithmetic` checks the text), aggregates, and chooses as Best-of-N would (PRM-Vote or PRM-Max).
So verifiers are compared on the same candidates, and the compute added is the verifier's
alone: each new record's compute is the original policy's plus the rescoring verifier's.

Beam search, DVTS and the other tree searches cannot be rescored: which candidates exist there
depends on the verifier that pruned them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from .answers import answers_match
from .results import ResultsError, ResultsFile, read_header, read_records
from .search.common import aggregate, choose_answer, group_answers, repair_candidates
from .search.types import Candidate, SearchConfig
from .verifiers.base import StepToScore

RESCORABLE = ("majority", "best-of-n", "best_of_n")  # runs of independent paths


def rescore_file(results: Path, out: Path, models, *, selection: str, aggregation: str, repair: bool = False,
                 restart: bool = False, wait: bool = False, say: Callable[[str], None] | None = None,
                 on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Rescore every record of `results` into `out` (resumable); returns the new records.
    `models`: ModelSettings naming the verifier (--prm) and, for judge, the policy."""
    from .solver import Session, open_verifier
    if not Path(results).is_file():
        raise ResultsError(f"{results}: no such file")
    header = read_header(results)
    if header is None:
        raise ResultsError(f"{results}: not a tts results file (no run header)")
    source = header.get("run") or {}
    strategy = source.get("strategy")
    if strategy not in RESCORABLE:
        raise ResultsError(f"{results}: a {strategy} run; rescore re-chooses runs of independent paths "
                           f"(majority, best-of-n): in tree searches the candidates depend on the verifier")
    records = read_records(results)
    if models.policy is None:  # the judge is the run's own policy model, as its records name it
        recorded = next((r.get("config", {}).get("policy") for r in records if r.get("config")), None)
        if recorded and Path(recorded).is_file():
            models = replace(models, policy=recorded)
    session = Session(models)
    run = {"rescored_from": {"file": Path(results).name, "run": source}, "verifier": session.verifier_identity(),
           "selection": selection, "aggregation": aggregation, **({"repair": True} if repair else {})}
    rf = ResultsFile(out, run, kind="grade", restart=restart, wait=wait, say=say, inputs=(results,))
    try:
        todo = [r for r in records if not rf.done(r["key"])]
        if not todo:
            return [rf.latest[r["key"]] for r in records if r["key"] in rf.latest]
        model = session.load() if session.base_prm == "judge" else None
        widest = max((len(r.get("candidates") or []) for r in todo), default=1)
        verifier = open_verifier(session.prm if session.prm_path is None else _spec(session),
                                 SimpleNamespace(model=model), SearchConfig(n=max(1, widest)),
                                 n_gpu_layers=models.gpu_layers, n_threads=models.threads,
                                 context_per_path=session.context, prm_entry=session.prm_entry)
        try:
            for key, rec in enumerate(todo):
                new = rescore_record(rec, verifier, (key, 0), selection=selection, aggregation=aggregation,
                                     verifier_name=session.verifier_name(), repair=repair)
                rf.write(new)
                if on_record:
                    on_record(new)
        finally:
            verifier.close()
            if verifier.engine is not None:
                verifier.engine.close()
    finally:
        rf.close()
        if session.model is not None:
            session.model.close()
    return [rf.latest[r["key"]] for r in records if r["key"] in rf.latest]


def _spec(session) -> str:
    return f"arithmetic+{session.prm_path}" if session.arithmetic else str(session.prm_path)


def rescore_record(rec: dict, verifier, key: tuple, *, selection: str, aggregation: str,
                   verifier_name: str, repair: bool = False) -> dict:
    """One record chosen again: its candidates' steps scored by `verifier` (as one search, the
    steps of every candidate at a depth in one call), aggregated, repaired if asked (from the
    answers the paths stated), and the answer chosen."""
    if rec.get("error") or not rec.get("candidates"):
        return {**rec}
    cands = rec["candidates"]
    problem = rec["problem"]
    verifier.begin(key, problem)
    scores: list[list[float]] = [[] for _ in cands]
    node_ids = [0] * len(cands)
    next_id = 1
    depth = 0
    while True:
        items, owners = [], []
        for i, c in enumerate(cands):
            steps = c.get("steps") or []
            if depth < len(steps):
                conf = (c.get("step_confidence") or [None] * len(steps))[depth]
                # the confidence verifier reads log-probs: the recorded confidence is their mean's exp
                logprobs = [math.log(conf)] if conf else []
                items.append(StepToScore(key=key, node_id=next_id, parent_id=node_ids[i], text=steps[depth],
                                         logprobs=logprobs))
                owners.append(i)
                node_ids[i] = next_id
                next_id += 1
        if not items:
            break
        for i, s in zip(owners, verifier.score(items)):
            scores[i].append(s)
        depth += 1
    verifier.end(key)
    used = verifier.take_usage(key[0])
    candidates = [Candidate(node_id=i + 1, steps=c.get("steps") or [], step_scores=[s for s in scores[i] if s is not None],
                            score=aggregate([s for s in scores[i] if s is not None], aggregation),
                            answer=c.get("repaired_from", c.get("answer")), answer_method=c.get("answer_method"),
                            finish_reason=c.get("finish_reason") or "", step_confidence=c.get("step_confidence") or [],
                            tokens=c.get("tokens"), branch=c.get("branch"))
                  for i, c in enumerate(cands)]
    if repair:
        repair_candidates(candidates, aggregation)
    votes = group_answers(candidates)
    answer = choose_answer(candidates, votes, selection)
    compute = dict(rec.get("compute") or {})
    policy_flops = (compute.get("policy") or {}).get("flops", 0.0)
    compute.pop("verifier", None)
    if used is not None:
        compute["verifier"] = used.as_dict()
    compute["flops"] = policy_flops + (used.flops if used is not None else 0.0)
    from .grade import candidate_record
    reference = rec.get("reference")
    return {**rec, "answer": answer, "correct": answers_match(answer, reference) if reference is not None else None,
            "strategy": "best-of-n", "verifier": verifier_name, "votes": votes,
            "candidates": [candidate_record(c) for c in candidates], "compute": compute,
            "config": {**(rec.get("config") or {}), "selection": selection, "aggregation": aggregation,
                       "prm": verifier_name, "repair": repair, "rescored": True}}


__all__ = ["RESCORABLE", "rescore_file", "rescore_record"]
