"""`tts train-prm`: step labels from rollouts, the problem-level split, the head's fit and its use
as a `--prm`. Label arithmetic and the split are pinned on the fake engine and plain arrays; the
whole command runs on the tiny GGUF and on SmolLM2."""

import json

import numpy as np
import pytest

from cli_helpers import interrupt_when_written, one_line_error, read_records, tts, write_jsonl
from fake_engine import FakeEngine
from tts_cli.datasets import Problem
from tts_cli.search import Job, Scheduler, SearchConfig
from tts_cli.train_prm import (StepTable, TrainingError, collect_rollouts, fit_head, label_rollouts,
                               rollout_slots, selection, split_problems, within_problem_auc)
from tts_cli.verifiers import ValueHeadPRM, load_head

# Two samples of one problem (reference 5). Sample A's first step, "A1", leads to 5 on its own
# continuation and on rollouts 1 and 3 (of 3); sample B's, "B1", to 4, and to 5 on rollout 1 only.
ANSWERS = {"A1": {0: 5, 1: 5, 2: 4, 3: 5}, "B1": {0: 4, 1: 5, 2: 4, 3: 4}}


def two_samples(steps, branch):
    if not steps:
        return ("A1\n\n" if branch == 0 else "B1\n\n"), "stop"
    return f"The answer is \\boxed{{{ANSWERS[steps[0].strip()][branch]}}}", "eos"


def run_labels(rollouts, n_seq_max=256, problems=1):
    engine = FakeEngine(two_samples, n_seq_max=n_seq_max)
    jobs = [Job(f"problem {i}", lambda s, c: label_rollouts(s, c, samples=2, rollouts=rollouts, reference="5"),
                SearchConfig(), tag=i, slots=rollout_slots(2, rollouts)) for i in range(problems)]
    out = [res for _, res in Scheduler(engine, None, max_searches=problems).run(jobs)]
    assert not engine.live  # every sample and rollout sequence was released
    return out, engine


def test_math_shepherd_labels_count_rollouts_that_reach_the_reference():
    (result,), _ = run_labels(rollouts=3)
    a, b = result.samples
    assert a.steps == ["A1\n\n", "The answer is \\boxed{5}"] and a.correct
    # step 1: 3 rollouts + the sample's own continuation; 2 + 1 reach 5. The last step: the outcome.
    assert (a.rollouts, a.reached) == ([4, 1], [3, 1])
    assert a.soft == [0.75, 1.0] and a.hard == [True, True]
    assert not b.correct and (b.rollouts, b.reached) == ([4, 1], [1, 0])
    assert b.soft == [0.25, 0.0] and b.hard == [True, False]
    assert len(a.confidence) == 2 and all(0 < c <= 1 for c in a.confidence)


def test_outcome_labels_give_every_step_its_paths_final_correctness():
    (result,), engine = run_labels(rollouts=0)
    a, b = result.samples
    assert a.soft == [1.0, 1.0] and b.soft == [0.0, 0.0]
    assert len(engine.started) == 2  # no rollouts: just the two samples


def test_rollouts_stay_within_the_slots_a_problem_reserves():
    results, engine = run_labels(rollouts=3, n_seq_max=rollout_slots(2, 3), problems=3)
    assert len(results) == 3 and engine.peak_live <= rollout_slots(2, 3)
    assert all(r.samples[0].soft == [0.75, 1.0] for r in results)


def test_rollouts_are_appended_per_problem_and_a_rerun_does_only_the_rest(tmp_path):
    problems = [Problem(id=f"p{i}", problem=f"problem {i}", answer="5", line=i + 1) for i in range(3)]
    path = tmp_path / "rollouts.jsonl"
    engine = FakeEngine(two_samples)
    recs, skipped = collect_rollouts(problems[:2], path, Scheduler(engine, None), SearchConfig(), samples=2, rollouts=1)
    assert skipped == 0 and [r["id"] for r in recs] == ["p0", "p1"]
    engine = FakeEngine(two_samples)
    recs, skipped = collect_rollouts(problems, path, Scheduler(engine, None), SearchConfig(), samples=2, rollouts=1)
    assert skipped == 2 and sorted(r["id"] for r in recs) == ["p0", "p1", "p2"]
    assert {s.prompt.endswith("problem 2\nAnswer:") for s in engine.started} == {True}  # only the new one ran
    lines = read_records(path)
    assert len(lines) == 3 and lines[2]["samples"][1]["reached"] == [1, 0]


def test_split_is_by_problem_stable_and_keeps_both_sides():
    ids = [f"q{i}" for i in range(200)]
    held = split_problems(ids, 0.25, seed=0)
    assert 30 <= len(held) <= 70
    assert split_problems(list(reversed(ids)), 0.25, seed=0) == held  # the file's order does not matter
    assert split_problems(ids + ["new"], 0.25, seed=0) - {"new"} == held  # adding one moves no other
    assert split_problems(ids, 0.25, seed=1) != held
    assert len(split_problems(["a", "b"], 0.01)) == 1 and len(split_problems(["a", "b"], 0.99)) == 1
    with pytest.raises(TrainingError):
        split_problems(ids, 1.5)


def table(x, soft, problem, sample, last, outcome=None):
    soft = np.asarray(soft, float)
    return StepTable(x=np.asarray(x, float), soft=soft, hard=soft > 0, outcome=np.asarray(
        outcome if outcome is not None else soft >= 0.5), confidence=np.zeros(len(soft)),
        problem=np.asarray(problem), sample=np.asarray(sample), last=np.asarray(last, bool))


def test_the_fitted_head_is_a_value_head_prm_and_finds_the_signal(tmp_path):
    rng = np.random.default_rng(0)
    n_problems, per = 40, 6
    rows = n_problems * per
    good = rng.random(rows) < 0.4
    x = rng.normal(size=(rows, 8)) * 3 + 10  # features far from standardized
    x[:, 2] += np.where(good, 4.0, -4.0)  # one direction carries the label
    t = table(x, good.astype(float), np.repeat([f"p{i}" for i in range(n_problems)], per),
              np.tile(np.arange(per), n_problems), np.ones(rows))
    head = fit_head(t)
    scores = head.score(t.x)
    assert within_problem_auc(scores, t) > 0.9
    assert abs(scores.mean() - good.mean()) < 0.1  # calibrated to the label rate, not balanced to 1/2
    head.save(tmp_path / "head.npz")
    arrays = load_head(tmp_path / "head.npz", "value_head")
    prm = ValueHeadPRM.__new__(ValueHeadPRM)  # its arithmetic, without a model behind it
    prm.head = arrays
    assert np.allclose(prm.apply(x.astype(np.float32)), scores, atol=1e-4)  # what --prm NAME computes


def test_one_label_everywhere_is_a_clear_error():
    t = table(np.ones((6, 3)) + np.arange(6)[:, None], np.zeros(6), ["a", "a", "b", "b", "c", "c"],
              [0, 1] * 3, [1] * 6)
    with pytest.raises(TrainingError, match="same label"):
        fit_head(t)


def test_within_problem_auc_and_selection_read_each_problems_candidates():
    # problem a: the right sample scores highest; problem b: the wrong one does; c: all wrong.
    t = table(np.zeros((6, 1)), [1, 0, 0, 1, 0, 0], ["a", "a", "b", "b", "c", "c"], [0, 1] * 3, [1] * 6,
              outcome=[1, 0, 0, 1, 0, 0])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.5])
    assert within_problem_auc(scores, t) == 0.5  # a: 1.0, b: 0.0; c has no right sample
    records = {"a": {"samples": [{"answer": "1", "correct": True}, {"answer": "2", "correct": False}]},
               "b": {"samples": [{"answer": "3", "correct": False}, {"answer": "1", "correct": True}]},
               "c": {"samples": [{"answer": "3", "correct": False}, {"answer": "4", "correct": False}]}}
    sel = selection(scores, t, records)
    assert sel == {"problems": 3, "max": round(1 / 3, 4), "vote": round(1 / 3, 4), "majority": round(1 / 3, 4),
                   "pass_at_n": round(2 / 3, 4),
                   # a and b are contested: the right sample ranks 1st in a, 2nd in b; a random order
                   # puts it at (2 + 1) / (1 + 1) = 1.5 on average
                   "contested": 2, "right_on_top": 0.5, "mean_rank_of_best_right": 1.5, "random_mean_rank": 1.5,
                   "majority_right_when_contested": 0.5}


def _train(data, model, folder, name, *extra):
    return tts("train-prm", data, "--out", name, "--dir", folder, "--policy", model, "--samples", "4",
               "--max-steps", "2", "--max-step-tokens", "24", "--threads", "2", "--temperature", "1.0", *extra)


def test_train_prm_end_to_end_on_the_tiny_model(tmp_path, tiny_model):
    rows = [{"id": f"t{i}", "problem": f"What is {i} + {i}?", "answer": "impossible-answer"} for i in range(6)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    # No sample can be right: nothing to learn, said in one line, and the rollouts are kept.
    r = _train(data, tiny_model, tmp_path / "first", "tiny-prm", "--rollouts", "1")
    # (after the progress of the stages that ran) one error line, exit 2
    assert r.exit_code == 2 and "Traceback" not in r.output
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "same label" in last
    first = read_records(tmp_path / "first" / "rollouts.jsonl")
    assert sorted(rec["id"] for rec in first) == [f"t{i}" for i in range(6)]
    # The same problems with the answer of each one's first answered sample as the reference: the
    # same seed samples the same solutions, so some samples are right and others wrong.
    chosen = {}
    for row, rec in zip(rows, sorted(first, key=lambda rec: rec["id"])):
        chosen[row["id"]] = next((j for j, s in enumerate(rec["samples"]) if s["answer"]), None)
        if chosen[row["id"]] is not None:
            row["answer"] = rec["samples"][chosen[row["id"]]]["answer"]
    assert sum(j is not None for j in chosen.values()) >= 4, "the tiny model's samples should end with a number"
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    family = write_jsonl(tmp_path / "family.jsonl", [{"id": f"f{i}", "problem": f"How many legs do {i} cats have?",
                                                      "answer": str(4 * i)} for i in range(3)])
    r = _train(data, tiny_model, tmp_path / "second", "tiny-prm", "--rollouts", "1", "--eval-data", family)
    assert r.exit_code == 0, r.output
    second = read_records(tmp_path / "second" / "rollouts.jsonl")
    for rec in second:
        j = chosen[rec["id"]]
        if j is not None:
            assert rec["samples"][j]["correct"] and rec["samples"][j]["reached"][-1] == 1
    report = json.loads((tmp_path / "second" / "report.json").read_text())
    # the free baselines on the same steps, and the same figures on a family never trained on
    assert set(report["baselines"]) == {"confidence", "arithmetic"}
    ev = report["eval"]["family"]
    assert ev["problems"] == 3 and set(ev["baselines"]) == {"confidence", "arithmetic"}
    assert {"max", "vote", "majority", "pass_at_n", "contested"} <= set(ev["head"]["selection"])
    assert len(read_records(tmp_path / "second" / "eval-family" / "rollouts.jsonl")) == 3
    assert report["problems"]["train"] + report["problems"]["heldout"] == 6 and report["problems"]["heldout"] >= 1
    assert set(report["heldout_ids"]).isdisjoint({rec["id"] for rec in second} - set(report["heldout_ids"]))
    assert (tmp_path / "second" / "head.npz").exists() and (tmp_path / "second" / "reliability.png").exists()
    info = tts("models", "info", "tiny-prm")
    assert info.exit_code == 0 and "value_head" in info.output and "heldout_step_auc" in info.output
    # The trained head scores in the searches, as any --prm.
    out = tmp_path / "bon.jsonl"
    g = tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "best-of-n", "--n", "2",
            "--prm", "tiny-prm", "--max-steps", "2", "--max-step-tokens", "6", "--threads", "2", "--limit", "2")
    assert g.exit_code == 0, g.output
    for rec in read_records(out):
        assert rec["verifier"] == "tiny-prm"
        assert all(0.0 <= c["score"] <= 1.0 for c in rec["candidates"])
    # A rerun resumes: nothing is rolled out or read again.
    again = _train(data, tiny_model, tmp_path / "second", "tiny-prm", "--rollouts", "1")
    assert again.exit_code == 0 and "0 tokens" in again.output
    assert len(read_records(tmp_path / "second" / "rollouts.jsonl")) == 6


def test_train_prm_bad_input_gives_one_line(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "d.jsonl", [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "x"}])
    one_line_error(_train(data, tiny_model, tmp_path / "w", "p"), "d.jsonl:2", "answer")
    good = write_jsonl(tmp_path / "g.jsonl", [{"problem": "What is 1 + 1?", "answer": "2"}])
    one_line_error(_train(good, tiny_model, tmp_path / "w", "p", "--labels", "soft"), "--labels")
    one_line_error(_train(good, tiny_model, tmp_path / "w", "p", "--baselines", "oracle"), "--baselines")
    one_line_error(_train(good, tiny_model, tmp_path / "w", "p", "--holdout", "1.0"), "--holdout")
    one_line_error(_train(good, tiny_model, data, "p"), "d.jsonl", "--dir")  # --dir is a file


@pytest.mark.slow
def test_train_prm_on_smollm2_then_best_of_n_scores_with_it(tmp_path, smollm2):
    src = [json.loads(x) for x in open("benchmarks/data/arith-calib.jsonl")][:8]
    data = write_jsonl(tmp_path / "train.jsonl", src)
    r = tts("train-prm", data, "--out", "smol-prm", "--dir", tmp_path / "prm", "--samples", "4", "--rollouts", "2",
            "--prompt", "few-shot", "--max-steps", "3", "--max-step-tokens", "32", "--temperature", "0.7",
            "--threads", "2")
    assert r.exit_code == 0, r.output
    recs = read_records(tmp_path / "prm" / "rollouts.jsonl")
    samples = [s for rec in recs for s in rec["samples"]]
    assert any(s["correct"] for s in samples) and not all(s["correct"] for s in samples)
    # labels from real rollouts: 2 completions + the sample's own per non-final step
    assert all(n in (1, 3) for s in samples for n in s["rollouts"])
    solved = tts("solve", "What is 12 + 30?", "--strategy", "best-of-n", "--n", "2", "--prm", "smol-prm",
                 "--prompt", "few-shot", "--max-steps", "3", "--max-step-tokens", "32", "--json")
    assert solved.exit_code == 0, solved.output
    result = json.loads(solved.stdout)
    assert result["verifier"] == "smol-prm" and all(c["step_scores"] for c in result["candidates"])


def test_ctrl_c_during_rollouts_keeps_finished_problems_and_rerun_resumes(tmp_path, tiny_model):
    import subprocess
    import sys
    n = 12
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                                              for i in range(n)])
    rollouts = tmp_path / "w" / "rollouts.jsonl"
    cmd = [sys.executable, "-m", "tts_cli", "train-prm", str(data), "--out", "ctrl-c", "--dir", str(tmp_path / "w"),
           "--policy", str(tiny_model), "--samples", "2", "--rollouts", "2", "--max-steps", "3",
           "--max-step-tokens", "40", "--threads", "1", "--concurrency", "1"]
    returncode, err = interrupt_when_written(cmd, rollouts)
    assert returncode == 130, err
    assert "rerun" in err and "Traceback" not in err
    kept = read_records(rollouts)
    assert 1 <= len(kept) < n, "the interrupt did not land mid-run"
    # The rerun rolls out only the rest (its answers are hard to get right: it may end with the
    # one-label error, which is fine here), and every problem is there once.
    subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    records = read_records(rollouts)
    assert sorted(r["id"] for r in records) == sorted(f"q{i}" for i in range(n))
    assert records[: len(kept)] == kept


def test_train_prm_with_policy_features_reads_nothing_again_and_registers_a_policy_head(tmp_path, tiny_model):
    """--features policy: each step's state kept from the rollouts' own decode (no feature pass),
    registered as a policy_head that best-of-n then scores with, with no second model."""
    rows = [{"id": f"t{i}", "problem": f"What is {i} + {i}?", "answer": "impossible-answer"} for i in range(6)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    first = _train(data, tiny_model, tmp_path / "first", "tiny-own", "--rollouts", "0", "--features", "policy")
    assert "same label" in first.stderr  # nothing right: just to learn each problem's samples
    for row, rec in zip(rows, sorted(read_records(tmp_path / "first" / "rollouts.jsonl"), key=lambda r: r["id"])):
        row["answer"] = next((s["answer"] for s in rec["samples"] if s["answer"]), row["answer"])
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    r = _train(data, tiny_model, tmp_path / "second", "tiny-own", "--rollouts", "0", "--features", "policy")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "second" / "report.json").read_text())
    assert report["features"] == "policy" and report["cost"]["feature_tokens"] == 0
    assert not (tmp_path / "second" / "features").exists()
    n_steps = sum(len(s["steps"]) for rec in read_records(tmp_path / "second" / "rollouts.jsonl") for s in rec["samples"])
    store = np.load(next((tmp_path / "second" / "features-policy").glob("part-*.npz")))
    assert store["x"].shape[1] == 64 and n_steps >= report["steps"]["train"] + report["steps"]["heldout"]
    info = tts("models", "info", "tiny-own")
    assert info.exit_code == 0 and "policy_head" in info.output
    out = tmp_path / "bon.jsonl"
    g = tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "best-of-n", "--n", "2",
            "--prm", "tiny-own", "--max-steps", "2", "--max-step-tokens", "6", "--threads", "2", "--limit", "2")
    assert g.exit_code == 0, g.output
    for rec in read_records(out):
        assert rec["verifier"] == "tiny-own" and all(0.0 <= c["score"] <= 1.0 for c in rec["candidates"])
        assert rec["compute"]["verifier"]["flops"] == 2 * 65 * rec["compute"]["verifier"]["tokens_evaluated"]
    # A rerun resumes: every problem has its record and its states, so nothing is rolled out again.
    again = _train(data, tiny_model, tmp_path / "second", "tiny-own", "--rollouts", "0", "--features", "policy")
    assert again.exit_code == 0, again.output
    assert len(read_records(tmp_path / "second" / "rollouts.jsonl")) == 6
    for extra, said in ((["--base", tmp_path / "other.gguf"], "--base must be the policy"), ([], "--features: base")):
        wrong = _train(data, tiny_model, tmp_path / "third", "x", "--features", "policy" if extra else "own", *extra)
        last = wrong.stderr.strip().splitlines()[-1]
        assert wrong.exit_code == 2 and "Traceback" not in wrong.output and last.startswith("error:") and said in last
