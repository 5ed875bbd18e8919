"""The server's counters, and /metrics in Prometheus' text exposition format (written here: a
few lines of text need no client library).

Two sources: the request side (counted on the event loop: requests by route and status, search
outcomes, latencies) and the engine side (read on the search thread between two steps: tokens,
FLOPs and decode calls per model, rows per decode, live sequences)."""

from __future__ import annotations

import bisect
import math
from collections import Counter

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Histogram:
    def __init__(self, buckets=LATENCY_BUCKETS):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bucket (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


class Metrics:
    """What the event loop counts."""

    def __init__(self):
        self.requests: Counter = Counter()  # (route, status code)
        self.searches: Counter = Counter()  # outcome: completed, failed, cancelled, rejected (429)
        self.latency: dict[str, Histogram] = {}  # route -> seconds from request to last byte

    def request_done(self, route: str, status: int, seconds: float | None) -> None:
        self.requests[(route, status)] += 1
        if seconds is not None:
            self.latency.setdefault(route, Histogram()).observe(seconds)

    def retry_after(self) -> int:
        """Seconds a client turned away should wait: about one request's latency so far."""
        means = [h.mean() for h in self.latency.values() if h.count]
        return max(1, min(60, math.ceil(max(means)))) if means else 1


def engine_snapshot(scheduler) -> dict:
    """The engines' counters (run on the search thread: they change during a step)."""
    out = {"searches_in_flight": scheduler.in_flight, "searches_waiting": len(scheduler.waiting),
           "peak_searches": scheduler.peak_searches, "sequence_slots": scheduler.engine.n_seq_max,
           "generation_decodes": scheduler.decode_steps, "generation_rows": scheduler.rows_decoded,
           "verifier_calls": scheduler.score_calls, "models": {}}
    engines = {"policy": scheduler.engine, "verifier": getattr(scheduler.verifier, "engine", None)}
    for name, engine in engines.items():
        if engine is not None:
            out["models"][name] = {**engine.stats.as_dict(), "live_sequences": len(engine.live_sequences())}
    return out


def exposition(metrics: Metrics, engine: dict, queued: int) -> str:
    """/metrics: Prometheus text format 0.0.4."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            tag = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"{name}{{{tag}}} {_num(value)}" if tag else f"{name} {_num(value)}")

    models = engine["models"]
    metric("tts_searches_in_flight", "gauge", "Searches running in the scheduler.",
           [({}, engine["searches_in_flight"])])
    metric("tts_searches_queued", "gauge", "Requests accepted and waiting for room in the engine.", [({}, queued)])
    metric("tts_searches_peak", "gauge", "Most searches in flight at once since the start.",
           [({}, engine["peak_searches"])])
    metric("tts_searches_total", "counter", "Searches by outcome (rejected: answered 429).",
           [({"outcome": k}, v) for k, v in sorted(metrics.searches.items())])
    metric("tts_sequence_slots", "gauge", "Sequence slots of each model's engine.",
           [({"model": "policy"}, engine["sequence_slots"])])
    metric("tts_live_sequences", "gauge", "Sequences held now (cached prompts excluded).",
           [({"model": m}, s["live_sequences"]) for m, s in models.items()])
    metric("tts_tokens_total", "counter", "Tokens per model: prefilled (read without sampling), generated "
           "(sampled), evaluated (everything through llama_decode).",
           [({"model": m, "kind": kind}, s[f"tokens_{kind}"]) for m, s in models.items()
            for kind in ("prefilled", "generated", "evaluated")])
    metric("tts_flops_total", "counter", "Estimated FLOPs per model (2 x parameters x tokens evaluated).",
           [({"model": m}, s["flops"]) for m, s in models.items()])
    metric("tts_decode_calls_total", "counter", "llama_decode calls per model (prefill and generation).",
           [({"model": m}, s["decode_calls"]) for m, s in models.items()])
    metric("tts_generation_decodes_total", "counter", "Token-generation decodes of the scheduler (one token for "
           "every live sequence of every search).", [({}, engine["generation_decodes"])])
    metric("tts_generation_rows_total", "counter", "Sequences in those decodes, summed.",
           [({}, engine["generation_rows"])])
    metric("tts_rows_per_decode", "gauge", "Mean sequences per generation decode since the start (searches of "
           "several clients sharing decodes raise it).",
           [({}, engine["generation_rows"] / engine["generation_decodes"] if engine["generation_decodes"] else 0.0)])
    metric("tts_verifier_calls_total", "counter", "Verifier calls (each answers every search waiting on it).",
           [({}, engine["verifier_calls"])])
    metric("tts_requests_total", "counter", "HTTP requests by route and status code.",
           [({"route": r, "code": c}, v) for (r, c), v in sorted(metrics.requests.items())])
    lines.append("# HELP tts_request_duration_seconds Completion requests, from arrival to the last byte.")
    lines.append("# TYPE tts_request_duration_seconds histogram")
    for route, h in sorted(metrics.latency.items()):
        total = 0
        for bound, count in zip(list(h.buckets) + [math.inf], h.counts):
            total += count
            le = "+Inf" if bound == math.inf else _num(bound)
            lines.append(f'tts_request_duration_seconds_bucket{{route="{route}",le="{le}"}} {total}')
        lines.append(f'tts_request_duration_seconds_sum{{route="{route}"}} {_num(h.sum)}')
        lines.append(f'tts_request_duration_seconds_count{{route="{route}"}} {h.count}')
    return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))
