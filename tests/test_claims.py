"""Claims of the README that no other test exercised, each on the real engine where the claim is
about it: auto's seeding, beam lookahead with model verifiers, the RLHFlow format, same seed
same answers for every strategy, and the CLI paths a user meets (Table 5, Ctrl-C, stdin,
bench, calibrate, head PRMs, offline pull)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import FAST, grade_command, interrupt_when_written, one_line_error, read_records, tts, write_jsonl
from tts_cli.difficulty import Bins
from tts_cli.engine import Engine, Model
from tts_cli.profile import Choice, Profile
from tts_cli.search import STRATEGIES, SearchConfig, run_search
from tts_cli.solver import close, open_policy, open_verifier
from tts_cli.verifiers import RLHFlowPRM, StepToScore

# --- 1. auto samples every path of its budget from its own stream -----------------------------

def test_auto_second_stage_does_not_resample_the_probe(tiny_q4_model, tmp_path):
    profile = Profile(policy={"name": "tiny", "file": str(tiny_q4_model)}, prm=None, bins=Bins(),
                      choices=[Choice(bin=b, budget=8, strategy="majority", accuracy=1.0, flops=1.0, problems=1)
                               for b in ("easy", "medium", "hard")])
    profile.save(tmp_path / "p.yaml")
    cfg = SearchConfig(n=8, probe=2, profile=str(tmp_path / "p.yaml"), temperature=1.0, max_steps=2,
                       max_step_tokens=16, seed=4)
    policy = open_policy(Model(tiny_q4_model), cfg, strategy="auto", n_threads=2, context_per_path=512)
    auto = run_search("auto", "What is 2 + 3?", policy, None, cfg)
    majority = run_search("majority", "What is 2 + 3?", policy, None, cfg)
    policy.close()
    assert auto.auto["chosen"] == "majority" and auto.auto["settings"]["n"] == 6
    texts = [c.text for c in auto.candidates]
    assert len(texts) == 8
    # independent sampling of 8 paths from this random model gives 8 distinct texts; so must auto
    assert len({c.text for c in majority.candidates}) == 8
    assert len(set(texts)) == 8, "the second stage repeated probe paths"


# --- 2. beam search with lookahead, with a judge and with a token-logit PRM --------------------

@pytest.mark.parametrize("prm", ["judge", "math_shepherd"])
def test_beam_lookahead_end_to_end_at_n16_m4(tiny_model, prm):
    # steps end at a space: the random model writes one often, so paths live long enough to look ahead
    cfg = SearchConfig(n=16, beam_width=4, lookahead=2, max_steps=3, max_step_tokens=8, seed=1, step_delimiter=" ")
    policy = open_policy(tiny_model, cfg, strategy="beam", n_threads=2, context_per_path=512)
    entry = {"name": "ms", "prm": {"format": "math_shepherd"}} if prm == "math_shepherd" else None
    verifier = open_verifier("judge" if prm == "judge" else str(tiny_model), policy, cfg, n_threads=2,
                             context_per_path=512, prm_entry=entry)
    plain = run_search("beam", "What is 2 + 3?", policy, verifier, SearchConfig(**{**cfg.as_dict(), "lookahead": 0}))
    ahead = run_search("beam", "What is 2 + 3?", policy, verifier, cfg)
    assert ahead.candidates and all(0.0 <= s <= 1.0 for c in ahead.candidates for s in c.step_scores)
    # the rollouts were generated and scored: more policy and verifier tokens than without
    assert ahead.compute["policy"]["tokens_generated"] > plain.compute["policy"]["tokens_generated"]
    assert ahead.compute["verifier"]["tokens_evaluated"] > plain.compute["verifier"]["tokens_evaluated"]
    # nothing left behind in either context (and no slot ever ran out: that would have raised)
    assert not policy.live_sequences() and not verifier.engine.live_sequences()
    close(policy, verifier)


# --- 3. the RLHFlow format against llama-cpp-python's own logits -------------------------------

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_rlhflow_reads_p_plus_where_the_assistant_answers(tmp_path):
    from llama_cpp import Llama

    from tiny_gguf import write_tiny_llama
    path = write_tiny_llama(tmp_path / "chat.gguf", chat_template=TEMPLATE)
    problem = "Tom has 3 apples and buys 4 more. How many?"
    steps = ["He starts with 3.", "3 + 4 = 7.", "The answer is \\boxed{7}."]
    with Engine(path, n_ctx=4096, n_seq_max=8, kv_unified=True, n_threads=2) as engine:
        prm = RLHFlowPRM(engine)
        key = (1, 0)
        prm.begin(key, problem)
        scores = []
        for i, step in enumerate(steps):
            scores += prm.score([StepToScore(key, i + 1, i, step, [])])
        # the conversation as the format defines it: user turns are steps, each answered "+"
        text = prm._render(problem, steps)
        assert text.count("<|user|>") == 3 and text.count("<|assistant|>+</s>") == 2
        assert text.startswith(f"<|user|>{problem} {steps[0]}")
        tokens = prm.tokens(prm.delta(problem, steps[:1]), first=True)
        ends = [len(tokens)]
        for k in range(2, 4):
            tokens += prm.tokens(prm.delta(problem, steps[:k]), first=False)
            ends.append(len(tokens))
        plus, minus = prm.good_id, prm.bad_id
    llm = Llama(str(path), n_ctx=2048, n_batch=32, n_ubatch=32, flash_attn=True, logits_all=True, verbose=False)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)])
    direct = [1.0 / (1.0 + math.exp(logits[e - 1, minus] - logits[e - 1, plus])) for e in ends]
    assert scores == pytest.approx(direct, abs=1e-4)


# --- 5. same seed, same answers, for every strategy ---------------------------------------------

def test_every_strategy_twice_with_one_seed_and_once_with_another(tiny_q4_model):
    model = Model(tiny_q4_model)

    def run(strategy, seed):
        cfg = SearchConfig(n=4, beam_width=2, max_steps=3, max_step_tokens=10, seed=seed, temperature=1.0)
        policy = open_policy(model, cfg, strategy=strategy, n_threads=2, context_per_path=512)
        verifier = open_verifier("judge", policy, cfg, n_threads=2, context_per_path=512)
        r = run_search(strategy, "What is 4 + 4?", policy, verifier, cfg)
        close(policy, verifier)
        return r.answer, [c.text for c in r.candidates]

    for strategy in STRATEGIES:
        first, again, other = run(strategy, 3), run(strategy, 3), run(strategy, 4)
        assert first == again, strategy
        if strategy != "cot":  # greedy: no seed to change
            assert other[1] != first[1], strategy


# --- 4. the CLI paths the README promises --------------------------------------------------------

ARITH = [{"problem": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(2, 3), (4, 1), (6, 2)]]


def test_compare_reports_the_table5_efficiency_line(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", ARITH)
    r = tts("compare", data, "--strategies", "cot,majority,auto", "--budgets", "2,4", "--out", tmp_path / "cmp",
            "--policy", tiny_model, "--concurrency", "2", *FAST)
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    eff = summary["efficiency"]
    maj = [row for row in summary["rows"] if row["strategy"] == "majority"]
    assert eff["majority_best_accuracy"] == max(row["accuracy"] for row in maj)
    assert set(eff["by_budget"]) == {"1", "2", "4"}  # majority's curve, estimated from its one run at N=4
    assert "compute-optimal (auto)" in r.output or "auto did not reach" in r.output


def test_models_pull_offline_fails_in_one_line():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # read when huggingface_hub is imported: a fresh process
    r = subprocess.run([sys.executable, "-m", "tts_cli", "models", "pull", "qwen2.5-0.5b-instruct"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "qwen2.5-0.5b-instruct" in lines[0]


def test_recipe_with_an_unknown_key_is_a_one_line_error(tiny_model, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("strategy: beam\nbeam_widht: 2\n")
    one_line_error(tts("solve", "1+1?", "--policy", tiny_model, "--config", recipe), str(recipe), "beam_widht")


def test_solve_reads_the_problem_from_stdin(tiny_model):
    r = tts("solve", "--file", "-", "--policy", tiny_model, "--strategy", "cot", "--json", *FAST,
            input="What is 7 * 8?\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["problem"] == "What is 7 * 8?"


def test_bench_from_the_cli(tiny_model):
    r = tts("bench", "--model", tiny_model, "--n", "1,2", "--tokens", "4", "--no-naive", "--json", "--threads", "2")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert [row["n"] for row in rows] == [1, 2] and all(row["engine_tok_s"] > 0 for row in rows)


def test_calibrate_from_the_cli_prefills_each_prompt_once_and_runs_cot_once(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", ARITH[:2])
    out = tmp_path / "profile.yaml"
    r = tts("calibrate", data, "--budgets", "2,4", "--prm", "confidence", "--beam-widths", "2",
            "--aggregations", "last", "--out", out, "--policy", tiny_model, "--prompt", "few-shot", *FAST)
    assert r.exit_code == 0, r.output
    profile = Profile.load(out)
    assert profile.choices and {c.budget for c in profile.choices} == {2, 4}
    assert all(c.rule for c in profile.choices) and "held-out check: none" in r.output  # 2 problems: none held out
    runs = tmp_path / "profile.yaml.runs"
    assert (runs / "cot_n1.jsonl").exists() and not (runs / "cot_n2.jsonl").exists()
    # majority and Best-of-N (and their early-stopping variants) at N=2 and 4 come from one pool of
    # 4 scored paths, DVTS at N=2 from the subtrees of its N=4 run; no difficulty run
    assert sorted(f.name for f in runs.glob("*.jsonl")) == sorted(
        ["pool_n4.jsonl", "cot_n1.jsonl", "dvts_n4_m2_vote_last.jsonl"] +
        [f"beam_n{n}_m2_vote_last.jsonl" for n in (2, 4)])
    assert {e["setting"] for e in profile.estimates if e["estimated"]} >= {
        "majority_n2", "best-of-n_n4_max_last", "majority-adaptive_n4_s0.7", "dvts_n2_m2_vote_last"}
    from tts_cli.engine.chat import few_shot_prompt
    tiny = Model(tiny_model)
    prefilled = {}
    for f in runs.glob("*.jsonl"):
        for rec in read_records(f):
            # a path going on from a step another run sampled prefills that step ("caught up")
            caught_up = rec["compute"].get("shared", {}).get("tokens_caught_up", 0)
            prefilled[rec["id"]] = prefilled.get(rec["id"], 0) + rec["compute"]["policy"].get("tokens_prefilled", 0) - caught_up
    for row_id, rec in zip(sorted(prefilled), ARITH[:2]):
        prompt = tiny.tokenize(few_shot_prompt(rec["problem"]), add_special=True)
        # every setting and budget together read the prompt once (all but its last token,
        # which each path evaluates itself), however many settings ran
        assert prefilled[row_id] <= len(prompt) - 1
    # the runs shared their draws (beam N=2's first steps are the pool's first two, ...), and a
    # run that replayed some reports what it would have cost alone
    shared = profile.meta["shared_draws"]
    assert shared["hits"] > 0 and f"shared draws: {shared['misses']} steps generated" in r.output
    replayed = [rec["compute"] for f in runs.glob("*.jsonl") for rec in read_records(f) if "shared" in rec["compute"]]
    assert sum(c["shared"]["steps"] for c in replayed) == shared["hits"]
    for c in replayed:  # each replayed token is one evaluation alone, unless it was prefilled here anyway
        saved = c["shared"]["tokens"] - c["shared"]["tokens_caught_up"]
        assert c["flops_unshared"] == pytest.approx(c["flops"] + 2 * tiny.n_params * saved)
    assert sum(c["flops_unshared"] for c in replayed) > sum(c["flops"] for c in replayed)


def test_calibrate_checks_on_held_out_problems_and_compare_uses_the_profile_end_to_end(tiny_model, tmp_path):
    rows = [{"id": f"a{i}", "problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)} for i in range(8)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)  # a2 and a7 fall in the held-out half (hash of the id)
    out = tmp_path / "p.yaml"
    common = ["--prm", "confidence", "--policy", tiny_model, "--prompt", "few-shot", *FAST]
    r = tts("calibrate", data, "--budgets", "2,4", "--temperatures", "0.3,0.7", "--beam-widths", "2",
            "--aggregations", "last", "--holdout", "0.5", "--out", out, *common)
    assert r.exit_code == 0, r.output
    profile = Profile.load(out)
    assert profile.heldout["problems"] == 2 and profile.meta["calibration_problems"] == 6
    assert [row["budget"] for row in profile.heldout["budgets"]] == [2, 4]
    assert "held-out check: 2 problems" in r.output and "N=4: profile predicted" in r.output
    assert {(e["budget"], e["run"]) for e in profile.estimates if e["setting"].startswith("majority")} == {
        (n, f"pool_n4_t{t}") for n in (2, 4) for t in ("0.3", "0.7")}
    shown = tts("calibrate", "--show", out)
    assert shown.exit_code == 0 and "held-out check: 2 problems" in shown.output
    again = tts("calibrate", data, "--budgets", "2,4", "--temperatures", "0.3,0.7", "--beam-widths", "2",
                "--aggregations", "last", "--holdout", "0.5", "--out", out, *common)
    assert again.exit_code == 0, again.output
    assert Profile.load(out).estimates == profile.estimates  # resumed: every run read back, nothing new
    cmp = tmp_path / "cmp"
    r = tts("compare", data, "--strategies", "cot,majority,best-of-n,auto", "--budgets", "2,4", "--profile", out,
            "--out", cmp, *common)
    assert r.exit_code == 0, r.output
    summary = json.loads((cmp / "summary.json").read_text())
    got = [(row["strategy"], row["n"], bool(row.get("estimated_from"))) for row in summary["rows"]]
    assert got == [("cot", 1, False)] + [(s, n, True) for s in ("majority", "best-of-n") for n in (1, 2, 4)] + \
        [("auto", 2, False), ("auto", 4, False)]
    assert sorted(f.name for f in cmp.glob("*.jsonl")) == ["auto_n2.jsonl", "auto_n4.jsonl", "cot_n1.jsonl",
                                                            "pool_best-of-n_n4.jsonl"]
    assert "estimated from one run at N_max" in r.output


def test_ctrl_c_during_grade_keeps_finished_problems_and_rerun_resumes(tiny_model, tmp_path):
    n = 16
    out = tmp_path / "results.jsonl"
    cmd = grade_command(tmp_path, tiny_model, out, n=n, concurrency=2, step_tokens=40)
    returncode, err = interrupt_when_written(cmd, out)
    assert returncode == 130, err
    kept = read_records(out)
    assert 1 <= len(kept) < n, "the interrupt did not land mid-run"
    assert "rerun to resume" in err and "Traceback" not in err
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = read_records(out)
    assert sorted(r["line"] for r in records) == list(range(1, n + 1))
    assert records[: len(kept)] == kept



def test_a_handled_ctrl_c_exits_130_even_when_it_landed_inside_an_eval(tmp_path):
    # sympy's parser (under math-verify, when an answer is graded) runs eval() on a string; a
    # Ctrl-C landing there used to end a run that had kept its work and said so as "killed by
    # SIGINT" instead of exit 130 (CPython remembers the interrupt past the `except`, and acts on
    # it when a program runs as `python -m`, as tests and some users run tts)
    (tmp_path / "interrupted_cli.py").write_text("""
import sys
from tts_cli.cli import app, main
from tts_cli.cli.common import interrupted

@app.command("interrupted-in-parser")
def interrupted_in_parser():
    try:
        eval("(_ for _ in ()).throw(KeyboardInterrupt())")
    except KeyboardInterrupt as e:
        interrupted("the finished records are in out.jsonl", e)

sys.argv = ["tts", "interrupted-in-parser"]
main()
""")
    done = subprocess.run([sys.executable, "-m", "interrupted_cli"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130, done.stderr
    assert "interrupted: the finished records are in out.jsonl; rerun to resume" in done.stderr

# --- 6. head PRMs through the CLI -----------------------------------------------------------------

def head_registry(tmp_path, tiny_model, head):
    if head is not None:
        np.savez(tmp_path / "head.npz", **head)
    reg = tmp_path / "models.yaml"
    reg.write_text(f"models:\n  - name: tiny-head\n    role: prm\n    params: 1e5\n    path: {tiny_model}\n"
                   f"    prm: {{format: value_head, head_file: head.npz}}\n")
    return reg


def test_head_prm_by_name_through_the_cli(tiny_model, tmp_path):
    import shutil
    shutil.copy(tiny_model, tmp_path / "tiny.gguf")
    hidden = Model(tiny_model).n_embd
    rng = np.random.default_rng(0)
    reg = head_registry(tmp_path, tmp_path / "tiny.gguf",
                        {"weight": (rng.standard_normal(hidden) * 0.01).astype(np.float32), "bias": np.zeros(1, np.float32)})
    r = tts("solve", "What is 2 + 2?", "--policy", tiny_model, "--prm", "tiny-head", "--models-file", reg,
            "--strategy", "best-of-n", "--n", "2", "--json", *FAST)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["verifier"] == "tiny-head"
    scores = [s for c in d["candidates"] for s in c["step_scores"]]
    assert scores and all(0.0 < s < 1.0 for s in scores)
    assert d["compute"]["verifier"]["tokens_evaluated"] > 0


@pytest.mark.parametrize("head,expected", [(None, "does not exist"),
                                           ({"weight": np.zeros(7, np.float32), "bias": np.zeros(1, np.float32)},
                                            "hidden size")])
def test_head_prm_missing_or_misshapen_head_is_a_one_line_error(tiny_model, tmp_path, head, expected):
    import shutil
    shutil.copy(tiny_model, tmp_path / "tiny.gguf")
    reg = head_registry(tmp_path, tmp_path / "tiny.gguf", head)
    one_line_error(tts("solve", "1+1?", "--policy", tiny_model, "--prm", "tiny-head", "--models-file", reg,
                       "--strategy", "best-of-n", *FAST), expected)


# --- 7. a profile round-trips to what was saved ----------------------------------------------------

def test_profile_round_trips_to_the_saved_object(tmp_path):
    saved = Profile(policy={"name": "p", "file": "p.gguf", "params": 1e8}, prm="judge", bins=Bins(easy=0.7, medium=0.2),
                    choices=[Choice(bin="medium", budget=4, strategy="dvts", accuracy=0.25, flops=3.5e9, problems=4,
                                    beam_width=2, selection="max", aggregation="min")],
                    frontier=[{"setting": "dvts_n4_m2_max_min", "accuracy": 0.25, "flops": 3.5e9}],
                    meta={"problems": 4})
    saved.save(tmp_path / "p.yaml")
    loaded = Profile.load(tmp_path / "p.yaml")
    assert loaded.bins == Bins(easy=0.7, medium=0.2)
    assert loaded.choices == saved.choices
    assert loaded.policy == saved.policy and loaded.prm == saved.prm and loaded.frontier == saved.frontier
