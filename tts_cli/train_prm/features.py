"""Stage 2: the hidden state at each step's end, read in the value_head PRM's format, kept in
shards under features/."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..engine import Engine, EngineError
from ..verifiers.base import StepToScore
from ..verifiers.head import ValueHeadPRM
from ..verifiers.token_logit import IncrementalVerifier
from .errors import TrainingError


class HiddenStateReader(ValueHeadPRM):
    """The value_head PRM's text, read as hidden states instead of scores: the features a
    value_head is applied to when it scores, so training and scoring see the same vectors."""

    name = "hidden states"

    def __init__(self, engine: Engine):
        if not engine.ctx.embeddings:
            raise EngineError("reading hidden states needs an engine created with embeddings=True")
        IncrementalVerifier.__init__(self, engine)

    def read(self, seqs):
        return list(self.engine.hidden_states(seqs))


def step_features(reader: IncrementalVerifier, records: list[dict]) -> list[np.ndarray]:
    """What `reader` reads at the end of every step of every sample, per record (rows in sample
    then step order): hidden states (HiddenStateReader) or scores (any incremental verifier,
    e.g. the judge). The records' problems are read side by side, depth by depth; a step's text
    extends its parent's sequence, and samples that share their first steps share those nodes,
    so no text is read twice."""
    keys = [("features", i) for i in range(len(records))]
    nodes: list[dict[tuple, int]] = [{(): 0} for _ in records]  # steps so far -> node id (root 0)
    values: list[dict[tuple, np.ndarray]] = [{} for _ in records]
    try:
        for key, rec in zip(keys, records):
            reader.begin(key, rec["problem"])
        depth = 0
        while True:
            items, where = [], []
            for key, rec, ids, vals in zip(keys, records, nodes, values):
                for sample in rec["samples"]:
                    prefix = tuple(sample["steps"][:depth + 1])
                    if len(prefix) == depth + 1 and prefix not in ids:
                        ids[prefix] = len(ids)
                        items.append(StepToScore(key=key, node_id=ids[prefix], parent_id=ids[prefix[:-1]],
                                                 text=prefix[-1], logprobs=[]))
                        where.append((vals, prefix))
            if not items:
                break
            for (vals, prefix), h in zip(where, reader.score(items)):
                vals[prefix] = np.asarray(h, dtype=np.float32)
            if depth:  # the nodes one step up will not be extended again
                for key, ids in zip(keys, nodes):
                    reader.forget(key, [i for prefix, i in ids.items() if len(prefix) == depth])
            depth += 1
    finally:
        for key in keys:
            reader.end(key)
    out = []
    for rec, vals in zip(records, values):
        rows = [vals[tuple(sm["steps"][:d + 1])] for sm in rec["samples"] for d in range(len(sm["steps"]))]
        out.append(np.stack(rows) if rows else np.zeros((0,), np.float32))
    return out


def feature_key(record: dict) -> str:
    """What a problem's features are stored under: its id and a hash of its samples' steps, so
    features read from other samples (a rollouts file started over) are never reused."""
    import hashlib
    import json
    steps = json.dumps([s.get("steps") for s in record.get("samples", [])], ensure_ascii=False)
    return f"{record['id']}#{hashlib.sha256(steps.encode('utf-8')).hexdigest()[:12]}"


class FeatureStore:
    """Hidden states per problem (feature_key), in shards written whole (a rename), so a killed
    run keeps every finished shard and redoes only the one it was writing."""

    def __init__(self, folder: Path, base: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.rows: dict[str, np.ndarray] = {}
        for part in sorted(self.folder.glob("part-*.npz")):
            with np.load(part, allow_pickle=False) as data:
                if str(data["base"]) != base:
                    raise TrainingError(f"{part}: features of another base model ({data['base']}); "
                                        f"delete {self.folder} or use another --dir")
                for pid, start, stop in zip(data["ids"], data["starts"], data["stops"]):
                    self.rows[str(pid)] = data["x"][start:stop]

    def add(self, ids: list[str], arrays: list[np.ndarray]) -> None:
        starts = np.cumsum([0] + [len(a) for a in arrays])
        n = len(list(self.folder.glob("part-*.npz")))
        tmp = self.folder / f".part-{n:05d}.npz"
        with open(tmp, "wb") as f:
            np.savez(f, x=np.concatenate(arrays) if arrays else np.zeros((0, 0), np.float32),
                     ids=np.array(ids), starts=starts[:-1], stops=starts[1:], base=np.array(self.base))
        tmp.rename(self.folder / f"part-{n:05d}.npz")
        self.rows.update(zip(ids, arrays))

    def has(self, record: dict) -> bool:
        return feature_key(record) in self.rows

    def by_id(self, records: list[dict]) -> dict[str, np.ndarray]:
        """Problem id -> its features, for the records whose samples were read."""
        return {r["id"]: self.rows[feature_key(r)] for r in records if self.has(r)}


def collect_features(records: list[dict], store: FeatureStore, reader: HiddenStateReader, *, chunk: int,
                     on_chunk: Callable[[int], None] | None = None) -> None:
    """Stage 2: features for every record not yet in the store, `chunk` problems per shard."""
    todo = [r for r in records if not store.has(r) and r.get("samples")]
    for i in range(0, len(todo), chunk):
        part = todo[i:i + chunk]
        store.add([feature_key(r) for r in part], step_features(reader, part))
        if on_chunk:
            on_chunk(len(part))


