"""The `tts` command, driven as a user would: Typer's CliRunner and real subprocesses."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import FAST, grade_command, one_line_error, read_records, record_lines, tts, write_jsonl


def test_solve_json_has_the_documented_fields(tiny_model):
    r = tts("solve", "What is 2 + 2?", "--policy", tiny_model, "--strategy", "beam", "--n", 4, "--beam-width", 2,
            "--prm", "confidence", "--json", *FAST)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"answer", "strategy", "config", "candidates", "tree", "compute"} <= set(d)
    assert d["strategy"] == "beam" and d["config"]["n"] == 4 and d["config"]["prm"] == "confidence"
    assert d["compute"]["flops"] > 0 and d["compute"]["policy"]["tokens_generated"] > 0
    assert d["candidates"] and d["tree"][0]["state"] == "root"


def test_solve_subprocess_on_smollm2_prints_one_json_object(tmp_path):
    problem = tmp_path / "p.txt"
    problem.write_text("What is 15 + 27?")
    out = subprocess.run([sys.executable, "-m", "tts_cli", "solve", "--file", str(problem), "--strategy", "cot",
                          "--max-steps", "3", "--max-step-tokens", "48", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)  # exactly one JSON document on stdout
    assert d["strategy"] == "cot" and len(d["candidates"]) == 1
    assert "SmolLM2" in d["config"]["policy"]


def test_recipe_sets_options_and_flags_override_it(tiny_model, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("strategy: best-of-n\nn: 3\nselection: max\nprm: confidence\n")
    r = tts("solve", "1+1?", "--policy", tiny_model, "--config", recipe, "--n", 2, "--json", *FAST)
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.stdout)["config"]
    assert cfg["strategy"] == "best-of-n" and cfg["n"] == 2 and cfg["selection"] == "max"
    assert len(json.loads(r.stdout)["candidates"]) == 2


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_grade_killed_then_resumed_leaves_each_problem_once(tiny_model, tmp_path, concurrency):
    n = 12
    out = tmp_path / "results.jsonl"
    cmd = grade_command(tmp_path, tiny_model, out, n=n, concurrency=concurrency, step_tokens=48)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if record_lines(out) >= 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = record_lines(out)
    assert 2 <= before < n, "the kill did not land mid-run"
    with open(out, "a") as f:  # as if the kill had come in the middle of a write
        f.write('{"id": "line-6", "torn')
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = read_records(out)
    assert sorted(r["line"] for r in records) == list(range(1, n + 1))
    assert (tmp_path / "results.jsonl.torn").read_text() == '{"id": "line-6", "torn\n'  # moved aside, not erased
    assert all({"id", "problem", "reference", "answer", "correct", "strategy", "candidates", "compute"} <= set(r)
               for r in records)
    assert {r["line"]: r["reference"] for r in records}[1] == "1"


def test_compare_writes_a_real_png_and_summary(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"problem": "2+2?", "answer": "4"}, {"problem": "3+3?", "answer": "6"}])
    r = tts("compare", data, "--strategies", "cot,majority", "--budgets", "2", "--out", tmp_path / "cmp",
            "--policy", tiny_model, *FAST)
    assert r.exit_code == 0, r.output
    png = tmp_path / "cmp" / "accuracy_vs_flops.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    assert matplotlib.image.imread(png).shape[0] > 100
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    # majority ran once at N=2; its N=1 point is estimated from that run
    assert [(row["strategy"], row["n"]) for row in summary["rows"]] == [("cot", 1), ("majority", 1), ("majority", 2)]
    assert all(row["pass_at_n"] >= row["accuracy"] for row in summary["rows"])
    assert "pass@N" in r.output


def test_pass_at_n_counts_problems_with_any_right_candidate():
    from tts_cli.grade import summarize
    records = [{"reference": "4", "correct": False, "candidates": [{"answer": "3"}, {"answer": "4.0"}]},
               {"reference": "6", "correct": True, "candidates": [{"answer": "6"}]},
               {"reference": "9", "correct": False, "candidates": [{"answer": "8"}, {"answer": None}]},
               {"reference": "1", "correct": False, "candidates": []}]
    s = summarize(records)
    assert s["accuracy"] == 0.25 and s["pass_at_n"] == 0.5


def test_models_list_and_info():
    r = tts("models", "list")
    assert r.exit_code == 0 and "qwen2.5-1.5b-instruct" in r.output and "math-shepherd" in r.output
    r = tts("models", "info", "smollm2-135m-instruct")
    assert r.exit_code == 0 and "local_path" in r.output


def test_user_registry_extends_bundled(tmp_path, tiny_model):
    reg = tmp_path / "models.yaml"
    reg.write_text(f"models:\n  - name: my-tiny\n    role: policy\n    params: 1e5\n    path: {tiny_model}\n")
    r = tts("solve", "1+1?", "--policy", "my-tiny", "--models-file", reg, "--strategy", "cot", "--json", *FAST)
    assert r.exit_code == 0, r.output


# --- bad input: one line naming what is wrong, non-zero exit, no traceback ------------------

@pytest.mark.parametrize("content,expected", [
    (None, "does not exist"), (b"", "empty"), (b"\x00\x01binary\x00", "binary"),
    (b'{"problem": "1+1", "answer": "2"}\nnot json\n', ":2: not valid JSON"),
    (b'{"problem": "1+1", "answer": "2"}\n{"question2": "x", "answer": "1"}\n', ":2: no problem field"),
    (b'{"problem": "1+1"}\n', ":1: no answer field"),
])
def test_bad_dataset_files(tmp_path, tiny_model, content, expected):
    data = tmp_path / "d.jsonl"
    if content is not None:
        data.write_bytes(content)
    r = tts("grade", data, "--out", tmp_path / "o.jsonl", "--policy", tiny_model)
    one_line_error(r, str(data), expected)


def test_skip_bad_records_bad_lines_and_goes_on(tmp_path, tiny_model):
    data = tmp_path / "d.jsonl"
    data.write_text('{"problem": "1+1", "answer": "2"}\nnot json\n{"problem": "", "answer": "1"}\n')
    out = tmp_path / "o.jsonl"
    r = tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "cot", "--skip-bad", *FAST)
    assert r.exit_code == 0, r.output
    records = read_records(out)
    errors = {r["line"]: r["error"] for r in records if r.get("error")}
    assert "not valid JSON" in errors[2] and errors[3] == "empty problem text"
    assert len(records) == 3


def test_unknown_model_name_suggests_close_names():
    one_line_error(tts("solve", "1+1", "--policy", "qwen2.5-1.5b-instrct"), "did you mean", "qwen2.5-1.5b-instruct")


def test_model_path_missing_or_not_gguf(tmp_path):
    one_line_error(tts("solve", "1+1", "--policy", tmp_path / "nope.gguf"), "nope.gguf", "does not exist")
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    one_line_error(tts("solve", "1+1", "--policy", bad), "bad.gguf", "not a GGUF")


@pytest.mark.parametrize("args,expected", [
    (["--n", "0"], "--n: input should be greater than or equal to 1, got 0"),
    (["--strategy", "beam", "--n", "6", "--beam-width", "4"], "multiple of the beam width"),
    (["--strategy", "nope"], "--strategy"),
    (["--aggregation", "median"], "--aggregation: input should be 'last', 'min', 'avg' or 'prod', got 'median'"),
    (["--temperature", "nan"], "--temperature: input should be a finite number"),
    (["--temperature", "inf"], "--temperature: input should be a finite number"),
    (["--top-p", "nan"], "--top-p: input should be a finite number"),
    (["--seed", "-2"], "--seed: input should be greater than or equal to -1"),
    (["--threads", "0"], "--threads: input should be greater than or equal to 1"),
    (["--context-per-path", "8"], "--context-per-path: input should be greater than or equal to 64"),
])
def test_invalid_option_values(tiny_model, args, expected):
    one_line_error(tts("solve", "1+1", "--policy", tiny_model, *args), expected)


def test_unwritable_out(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1", "answer": "2"}])
    one_line_error(tts("grade", data, "--out", tmp_path, "--policy", tiny_model), "is a directory")
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_line_error(tts("grade", data, "--out", locked / "o.jsonl", "--policy", tiny_model), "not writable")


def test_empty_and_huge_problems(tiny_model):
    one_line_error(tts("solve", "   ", "--policy", tiny_model), "empty")
    r = tts("solve", "x" * 100_000, "--policy", tiny_model, "--strategy", "cot", "--json", *FAST)
    assert r.exit_code == 0, r.output
    assert any("cut to" in n for n in json.loads(r.stdout)["notes"])
