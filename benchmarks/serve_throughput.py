"""Problems per minute through `tts serve` with K concurrent clients, against `tts grade
--concurrency K` on the same problems and settings, and whether both give the same answers.

Settings (both sides): the bundled SmolLM2-135M, few-shot prompt, majority N=4, 6 steps x 64
tokens, seed 0, the first 24 problems of benchmarks/data/arith-test.jsonl.

- grade: `batch.grade_data`, the function `tts grade` runs (the CLI adds only its progress bar),
  in this process; timed from the moment its engines are open (the first search starts) to its
  last record, so loading the model is not counted.
- serve: the `tts serve` command in a subprocess; K client threads (the `openai` client, one
  request at a time each) take the problems from one queue; timed from the first request to
  the last answer, once the server listens.

Same answers: for each problem, the answer, and the texts of all N candidate paths (as a set:
the order paths finish in is not compared), from the results file and from the responses' `tts`
field; the same seed must give the same paths.

    python benchmarks/serve_throughput.py --k 8 --rounds 2 --json runs/serve_throughput.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tts_cli (the server subprocess runs it too), not an installed one
DATA = ROOT / "benchmarks" / "data" / "arith-test.jsonl"
SETTINGS = {"strategy": "majority", "n": 4, "prompt": "few-shot", "max_steps": 6, "max_step_tokens": 64, "seed": 0}
FLAGS = [x for k, v in SETTINGS.items() for x in (f"--{k.replace('_', '-')}", str(v))]  # the same, for tts serve


def run_grade(problems_file: Path, k: int, out: Path, threads: int | None) -> dict:
    from tts_cli.batch import Run, grade_data
    from tts_cli.settings import build_batch, build_run
    settings = build_run(None, {**SETTINGS, "threads": threads})
    stamps: dict = {}

    class Clock:  # grade_data's progress hooks: entered once the engines are open, one record per problem
        def __enter__(self):
            stamps["start"] = time.perf_counter()
            return self

        def __exit__(self, *exc):
            return False

        def add(self, *args):
            pass

        skip = add

        def record(self, key, rec, flight):
            stamps["last"] = time.perf_counter()

    summary = grade_data(problems_file, {"": Run(out, settings)}, build_batch({"concurrency": str(k), "restart": True}),
                         progress=Clock())[""]
    wall = stamps["last"] - stamps["start"]
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines()[1:])}
    return {"wall_s": round(wall, 2), "problems": len(records), "problems_per_min": round(60 * len(records) / wall, 2),
            "accuracy": summary.accuracy,
            "answers": {i: (r["answer"], sorted(c["text"] for c in r["candidates"])) for i, r in records.items()}}


def run_serve(problems: list[dict], k: int, threads: int | None) -> dict:
    import openai

    from tts_cli.answers import answers_match
    cmd = [sys.executable, "-m", "tts_cli", "serve", *FLAGS, "--concurrency", str(k), "--port", "0",
           *(["--threads", str(threads)] if threads else [])]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise SystemExit(f"tts serve did not start: {proc.stderr.read()}")
        url = re.search(r"(http://\S+)/v1", line).group(1)
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
        todo: queue.Queue = queue.Queue()
        for p in problems:
            todo.put(p)
        answers, lock = {}, threading.Lock()

        def worker():
            while True:
                try:
                    p = todo.get_nowait()
                except queue.Empty:
                    return
                r = client.chat.completions.create(model="tts", messages=[{"role": "user", "content": p["problem"]}])
                found = r.model_extra["tts"]
                with lock:
                    answers[p["id"]] = (found["answer"], sorted(c["text"] for c in found["candidates"]))

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(k) as pool:
            for f in [pool.submit(worker) for _ in range(k)]:
                f.result()
        wall = time.perf_counter() - start
        metrics = urllib.request.urlopen(url + "/metrics", timeout=60).read().decode()

        def value(name):
            m = re.search(rf"^{name} (\S+)$", metrics, re.M)
            return float(m.group(1)) if m else None

        return {"wall_s": round(wall, 2), "problems": len(answers),
                "problems_per_min": round(60 * len(answers) / wall, 2),
                "accuracy": sum(answers_match(answers[p["id"]][0], p["answer"]) for p in problems) / len(problems),
                "rows_per_decode": round(value("tts_rows_per_decode"), 2), "peak_searches": value("tts_searches_peak"),
                "answers": answers}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=8, help="concurrent clients, and grade's --concurrency")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2, help="grade/serve pairs, in ABBA order (grade, serve, serve, "
                                                          "grade, ...) so that a machine getting busier or idler "
                                                          "during the run weighs on both sides alike")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()

    problems = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()][:args.limit]
    out = {"k": args.k, "problems": len(problems), "settings": SETTINGS, "load_average_before":
           [round(x, 2) for x in os.getloadavg()], "grade": [], "serve": []}
    answers = {"grade": [], "serve": []}
    order = [side for r in range(args.rounds) for side in (("grade", "serve") if r % 2 == 0 else ("serve", "grade"))]
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "problems.jsonl"
        subset.write_text("".join(json.dumps(p) + "\n" for p in problems))
        for side in order:
            load = round(os.getloadavg()[0], 2)
            if side == "grade":
                row = run_grade(subset, args.k, Path(tmp) / "grade.jsonl", args.threads)
                print(f"tts grade --concurrency {args.k}: {row['problems_per_min']} problems/min ({row['wall_s']} s, "
                      f"load {load})", flush=True)
            else:
                row = run_serve(problems, args.k, args.threads)
                print(f"tts serve, {args.k} clients: {row['problems_per_min']} problems/min ({row['wall_s']} s, "
                      f"load {load}), rows/decode {row['rows_per_decode']}, peak searches {row['peak_searches']}",
                      flush=True)
            answers[side].append(row.pop("answers"))
            out[side].append({**row, "load_average_1min_at_start": load})
    per_min = {side: round(60 * len(problems) * len(out[side]) / sum(r["wall_s"] for r in out[side]), 2)
               for side in ("grade", "serve")}
    reference = answers["grade"][0]
    runs = answers["grade"][1:] + answers["serve"]
    out.update(problems_per_min=per_min, serve_over_grade=round(per_min["serve"] / per_min["grade"], 3),
               same_answers=min(sum(run[i][0] == reference[i][0] for i in reference) for run in runs),
               same_candidate_texts=min(sum(run[i] == reference[i] for i in reference) for run in runs),
               load_average_after=[round(x, 2) for x in os.getloadavg()])
    print(f"all rounds: grade {per_min['grade']}, serve {per_min['serve']} problems/min: serve / grade "
          f"{out['serve_over_grade']:.2f}x; every run against grade's first: same answers >= {out['same_answers']}/"
          f"{len(problems)}, same candidate texts >= {out['same_candidate_texts']}/{len(problems)}; load average "
          f"before {out['load_average_before']}, after {out['load_average_after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
