"""Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to Inference-Time
Scaling of LLMs using Particle-Based Monte Carlo Methods"; its_hub's ParticleFiltering).

N particles (partial solutions) start from the prompt. Each iteration every live particle samples
one next step and the verifier scores it; then the live particles are resampled: as many draws as
there are live particles, each particle drawn in proportion to its weight softmax(logit(s) / T),
where s is its path score (`aggregation`; "last": the new step's reward) and T is
`resample_temperature`. At T = 1 the weight is the odds s / (1 - s), as in its_hub. A particle
drawn c times goes on as itself and c - 1 forks sharing its KV cache; one never drawn is pruned.
Resampling is systematic (one uniform offset for all draws: less variance than independent
draws), seeded from the run's seed, so one seed always gives the same search.

Unlike its_hub, where finished particles stay in the population and are resampled with the rest,
a finished particle leaves the live set and becomes a candidate, as in beam search: the live set
only shrinks, so the search never holds more than N sequences. It ends when every particle has
finished (at max_steps at the latest). The answer is PRM-Vote or PRM-Max (`selection`) over the
finished paths; its_hub returns the highest-weighted particle, i.e. PRM-Max with "last".
"""

from __future__ import annotations

import math
import random

from .common import Search
from .types import SearchConfig


def particle_filter(search: Search, config: SearchConfig):
    run = search.run("particle_filter", config)
    rng = random.Random(run.seed)
    live = run.spread(run.start(), config.n)
    dropped = 0
    while live:
        nodes = yield from run.step(live)
        yield from run.score(nodes)
        run.forget_scores(sorted({node.parent for node in nodes}))  # no particle extends them any more
        done = [p for p in live if p.node.state == "finished"]
        run.finish(done)
        run.done_with_slots(len(done))  # finished particles are not replaced
        live = [p for p in live if p.node.state != "finished"]
        if not live:
            break
        weights = resampling_weights([run.path_score(p) for p in live], config.resample_temperature)
        draws = systematic_resample(weights, len(live), rng)
        run.prune([p for p, c in zip(live, draws) if c == 0], "not drawn when resampling")
        dropped += draws.count(0)
        # prune first, then fork: the forks take the slots the dropped particles gave up
        kept = [(p, c) for p, c in zip(live, draws) if c]
        live = run.spread_each([p for p, _ in kept], [c for _, c in kept])
    result = run.result(config.selection)
    result.saved = run.saved()  # the whole budget is spent: resampling only moves it
    result.notes.append(f"resampling dropped {dropped} partial paths for forks of better-scored ones")
    return result


def resampling_weights(scores: list[float], temperature: float) -> list[float]:
    """softmax(logit(score) / temperature), unnormalised (shifted by the largest logit)."""
    logits = [math.log(s / (1 - s)) / temperature for s in (min(max(s, 1e-6), 1 - 1e-6) for s in scores)]
    top = max(logits)
    return [math.exp(x - top) for x in logits]


def systematic_resample(weights: list[float], k: int, rng: random.Random) -> list[int]:
    """How many of k draws each particle gets. Draw j takes the particle whose slice of the
    cumulative weights holds (u + j) / k, one u ~ U[0, 1) for all: particle i gets k * w_i
    draws rounded down or up."""
    total = sum(weights)
    counts = [0] * len(weights)
    u = rng.random()
    i, edge = 0, weights[0] / total
    for j in range(k):
        point = (u + j) / k
        while point >= edge and i < len(weights) - 1:
            i += 1
            edge += weights[i] / total
        counts[i] += 1
    return counts
