"""Problems per minute when many searches share the engine (`--concurrency K`), side by side.

For each setting (majority N=4; beam N=4 M=2 with `confidence`; DVTS N=8 M=4 with `judge`) the
same problems are solved at each K, on one loaded model, one configuration at a time. Also
measured in the same run: raw `llama_decode` throughput at N and 8N sequences, the ceiling of
what batching K=8 searches of N paths can gain on this machine. Answers at every K are compared
with K=1 (the same seed must give the same answers).

    python benchmarks/grade_throughput.py --json runs/throughput.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tts_cli.bench import bench_raw_decode
from tts_cli.engine import Model, gpu_offload_supported
from tts_cli.engine.chat import few_shot_prompt
from tts_cli.answers import answers_match
from tts_cli.models import smollm2_path
from tts_cli.search import Job, Scheduler, SearchConfig
from tts_cli.search.capacity import auto_concurrency, policy_slots, slots_needed
from tts_cli.solver import close, open_policy, open_verifier

DATA = Path(__file__).resolve().parent / "data" / "arith-calib.jsonl"
SETTINGS = {  # name -> (strategy, verifier, config overrides)
    "majority N=4": ("majority", None, {"n": 4}),
    "beam N=4 M=2 confidence": ("beam", "confidence", {"n": 4, "beam_width": 2}),
    "dvts N=8 M=4 judge": ("dvts", "judge", {"n": 8, "beam_width": 4}),
    "beam N=4 M=2 judge": ("beam", "judge", {"n": 4, "beam_width": 2}),  # not in the default run
}
DEFAULT_SETTINGS = ["majority N=4", "beam N=4 M=2 confidence", "dvts N=8 M=4 judge"]


def run_setting(model, problems, strategy, prm, cfg, k, threads, context):
    policy = open_policy(model, cfg, slots=policy_slots(slots_needed(strategy, cfg), k), n_threads=threads, context_per_path=context)
    verifier = open_verifier(prm, policy, cfg, concurrency=k, n_threads=threads, context_per_path=context)
    scheduler = Scheduler(policy, verifier, max_searches=4 * k)  # as `tts grade --concurrency k`
    t0 = time.perf_counter()
    results = {job.tag: out for job, out in scheduler.run(Job(p["problem"], strategy, cfg, tag=i)
                                                           for i, p in enumerate(problems))}
    wall = time.perf_counter() - t0
    errors = [str(r) for r in results.values() if isinstance(r, Exception)]
    if errors:
        raise SystemExit(f"{strategy} K={k}: {errors[0]}")
    assert not policy.live_sequences(), "a search leaked sequences"
    row = {"k": k, "peak_searches": scheduler.peak_searches, "wall_s": round(wall, 2), "problems_per_min": round(60 * len(problems) / wall, 2),
           "tokens_generated": policy.stats.tokens_generated, "tokens_prefilled": policy.stats.tokens_prefilled,
           "generation_decodes": scheduler.decode_steps,
           "rows_per_decode": round(scheduler.rows_decoded / max(1, scheduler.decode_steps), 2),
           "verifier_tokens": verifier.engine.stats.tokens_evaluated if getattr(verifier, "engine", None) else 0,
           "score_calls": scheduler.score_calls,
           "accuracy": sum(answers_match(results[i].answer, p["answer"]) for i, p in enumerate(problems)) / len(problems)}
    answers = {i: (results[i].answer, [c.text for c in results[i].candidates]) for i in results}
    close(policy, verifier)
    return row, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--ks", default="1,4,8,auto")
    ap.add_argument("--settings", default=",".join(DEFAULT_SETTINGS),
                    help="comma-separated names from: " + ", ".join(SETTINGS))
    ap.add_argument("--model", default=None, help="policy GGUF (default: the bundled SmolLM2-135M)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--max-step-tokens", type=int, default=64)
    ap.add_argument("--context-per-path", type=int, default=1024)
    ap.add_argument("--raw-tokens", type=int, default=64)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()

    problems = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()][:args.limit]
    model = Model(args.model or smollm2_path())
    base = SearchConfig(max_steps=args.max_steps, max_step_tokens=args.max_step_tokens, prompt="few-shot", seed=0)
    on_gpu = gpu_offload_supported() and model.offloaded
    out = {"model": str(model.path), "problems": len(problems), "gpu": on_gpu, "settings": []}
    prompt_tokens = model.tokenize(few_shot_prompt(problems[0]["problem"]), add_special=True)
    for name in args.settings.split(","):
        strategy, prm, over = SETTINGS[name]
        cfg = SearchConfig(**{**base.as_dict(), **over})
        n = slots_needed(strategy, cfg)
        raw = {m: round(bench_raw_decode(model, prompt_tokens, m, args.raw_tokens, unified=False,
                                         n_threads=args.threads), 1) for m in (n, 8 * n)}
        entry = {"setting": name, "raw_decode_tok_s": raw, "raw_gain": round(raw[8 * n] / raw[n], 3), "rows": []}
        print(f"\n{name}: raw llama_decode {raw[n]} tok/s at {n} sequences, {raw[8 * n]} at {8 * n} "
              f"(gain {entry['raw_gain']}x)", flush=True)
        base_answers = None
        for ks in args.ks.split(","):
            k = auto_concurrency(n, on_gpu, prm not in (None, "confidence")) if ks == "auto" else int(ks)
            row, answers = run_setting(model, problems, strategy, prm, cfg, k, args.threads, args.context_per_path)
            row["k_label"] = ks
            if base_answers is None:
                base_answers = answers
            row["same_answers_as_first"] = sum(answers[i][0] == base_answers[i][0] for i in answers)
            row["same_texts_as_first"] = sum(answers[i] == base_answers[i] for i in answers)
            first = entry["rows"][0] if entry["rows"] else row
            row["speedup"] = round(row["problems_per_min"] / first["problems_per_min"], 3)
            row["share_of_raw_gain"] = round((row["speedup"] - 1) / (entry["raw_gain"] - 1), 3) \
                if entry["raw_gain"] > 1 else None
            entry["rows"].append(row)
            print(f"  K={ks:>4} ({k}): {row['problems_per_min']:6.1f} problems/min  speedup {row['speedup']:.2f}x  "
                  f"rows/decode {row['rows_per_decode']:5.1f}  prefilled {row['tokens_prefilled']}  "
                  f"same answers {row['same_answers_as_first']}/{len(problems)}  "
                  f"same texts {row['same_texts_as_first']}/{len(problems)}  wall {row['wall_s']} s", flush=True)
        out["settings"].append(entry)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
