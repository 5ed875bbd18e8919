"""Results files a user can trust: they never lose a record, never mix two runs, never hide a bad
value. Each test is a case a user met (issue 17), driven through the `tts` command on the tiny
model."""

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from cli_helpers import FAST, interrupt_when_written, one_line_error, read_records, record_lines, tts, write_jsonl

MAJ = ["--strategy", "majority", "--n", "2", *FAST]


def problems(tmp_path, n=6, name="d.jsonl", with_ids=False):
    rows = [{"question": f"What is {i} + 1?", "answer": f"x\n#### {i + 1}"} for i in range(n)]
    if with_ids:
        rows = [{"id": f"q{i}", **r} for i, r in enumerate(rows)]
    return write_jsonl(tmp_path / name, rows)


def grade(data, out, model, *extra):
    return tts("grade", data, "--out", out, "--policy", model, *MAJ, *extra)


def test_a_damaged_line_in_the_middle_stops_the_run_and_changes_nothing(tiny_model, tmp_path):
    data, out = problems(tmp_path, 12), tmp_path / "r.jsonl"
    assert grade(data, out, tiny_model).exit_code == 0
    lines = out.read_bytes().split(b"\n")
    lines[3] = lines[3][: len(lines[3]) // 2]  # a copy cut short, a merged shard
    damaged = b"\n".join(lines)
    out.write_bytes(damaged)
    r = grade(data, out, tiny_model, "--limit", "2")
    one_line_error(r, f"{out}:4: damaged line", "records around it are kept")
    assert out.read_bytes() == damaged  # not one byte changed


def test_a_torn_last_line_is_moved_aside_not_erased(tiny_model, tmp_path):
    data, out = problems(tmp_path, 4), tmp_path / "r.jsonl"
    assert grade(data, out, tiny_model, "--limit", "2").exit_code == 0
    with open(out, "a") as f:
        f.write('{"key": "q9:abc", "answ')  # a run killed mid-write
    r = grade(data, out, tiny_model)
    assert r.exit_code == 0, r.output
    assert "torn" in r.stderr and "r.jsonl.torn" in r.stderr
    assert (tmp_path / "r.jsonl.torn").read_text() == '{"key": "q9:abc", "answ\n'
    assert len(read_records(out)) == 4


@pytest.mark.parametrize("content", [b"hello, my notes\n", b"a,b\n1,2\n", b'{"question": "1+1", "answer": "2"}\n'])
def test_an_existing_file_that_is_not_a_results_file_is_refused(tiny_model, tmp_path, content):
    data, out = problems(tmp_path, 2), tmp_path / "notes.txt"
    out.write_bytes(content)
    one_line_error(grade(data, out, tiny_model), "notes.txt", "not a tts results file")
    assert out.read_bytes() == content


def test_out_equal_to_the_data_file_is_refused(tiny_model, tmp_path):
    data = problems(tmp_path, 2)
    before = data.read_bytes()
    one_line_error(grade(data, data, tiny_model), "d.jsonl", "input file")
    assert data.read_bytes() == before


@pytest.mark.parametrize("change,field", [(["--n", "3"], "n: 2 there, 3 now"),
                                          (["--strategy", "cot"], 'strategy: "majority" there, "cot" now'),
                                          (["--temperature", "0.3"], "temperature: 0.7 there, 0.3 now"),
                                          (["--prompt", "few-shot"], "prompt:")])
def test_resuming_with_another_configuration_stops_naming_the_field(tiny_model, tmp_path, change, field):
    data, out = problems(tmp_path, 3), tmp_path / "r.jsonl"
    assert grade(data, out, tiny_model).exit_code == 0
    before = out.read_bytes()
    r = tts("grade", data, "--out", out, "--policy", tiny_model, *MAJ, *change)
    one_line_error(r, "belongs to another run", field, "--restart")
    assert out.read_bytes() == before
    # --restart moves the old file aside (never deletes) and starts over
    r = tts("grade", data, "--out", out, "--policy", tiny_model, *MAJ, *change, "--restart")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.jsonl.1").read_bytes() == before
    assert len(read_records(out)) == 3 and "moved" in r.stderr


def test_another_data_set_on_the_same_file_is_refused(tiny_model, tmp_path):
    out = tmp_path / "r.jsonl"
    assert grade(problems(tmp_path, 3), out, tiny_model).exit_code == 0
    other = write_jsonl(tmp_path / "e.jsonl", [{"question": f"How many legs do {i} cats have?", "answer": str(4 * i)}
                                              for i in range(3)])
    one_line_error(grade(other, out, tiny_model), "none of its 3 records is a problem of", "e.jsonl")


def test_a_line_inserted_in_the_data_file_re_solves_nothing_that_was_done(tiny_model, tmp_path):
    data, out = problems(tmp_path, 4), tmp_path / "r.jsonl"
    assert grade(data, out, tiny_model).exit_code == 0
    first = read_records(out)
    data.write_text('{"question": "What is 100 + 1?", "answer": "#### 101"}\n' + data.read_text())
    r = grade(data, out, tiny_model)
    assert r.exit_code == 0, r.output
    records = read_records(out)
    assert records[:4] == first and len(records) == 5 and records[4]["reference"] == "101"
    assert "already done: 4" in " ".join(r.stdout.split())


def test_records_of_other_problems_are_reported_and_not_counted(tiny_model, tmp_path):
    out = tmp_path / "r.jsonl"
    data = problems(tmp_path, 4)
    assert grade(data, out, tiny_model).exit_code == 0
    smaller = write_jsonl(tmp_path / "s.jsonl", [json.loads(line) for line in data.read_text().splitlines()[:2]]
                          + [{"question": "What is 50 + 1?", "answer": "#### 51"}])
    r = grade(smaller, out, tiny_model)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "2 records in" in text and "belong to no problem of this data set" in text
    assert "│ all │ 3 │" in text.replace("  ", " ") or " all " in text  # the summary is of these 3 problems


def test_the_summary_counts_this_data_sets_problems_once():
    from tts_cli.datasets import Problem
    from tts_cli.grade import summary_of

    class File:
        skipped = duplicates = written = 0
        latest = {}

    ps = [Problem(id=str(i), problem=f"p{i}", answer=str(i), line=i + 1) for i in range(3)]
    f = File()
    f.latest = {ps[0].key: {"key": ps[0].key, "answer": "0", "correct": True, "reference": "0"},
                ps[1].key: {"key": ps[1].key, "answer": "5", "correct": True, "reference": "5"},  # reference changed
                "other:1": {"key": "other:1", "answer": "1", "correct": True}}
    s = summary_of(f, ps, [], {p.key for p in ps})
    assert [r["key"] for r in s.records] == [ps[0].key, ps[1].key]
    assert s.foreign == 1 and s.regraded == 1 and s.accuracy == 0.5  # graded again: 5 is not 1


@pytest.mark.parametrize("recipe,expected", [
    ("n: lots\n", "r.yaml:1: n: input should be a valid integer, got 'lots'"),
    ("strategy: majority\nn: 2.5\n", "r.yaml:2: n: input should be a valid integer, got 2.5"),
    ("temperature: hot\n", "r.yaml:1: temperature: input should be a valid number, got 'hot'"),
    ("seed: abc\n", "r.yaml:1: seed: input should be a valid integer, got 'abc'"),
    ("n: true\n", "r.yaml:1: n: input should be a valid integer, got true"),
    ("temperature: .nan\n", "r.yaml:1: temperature: input should be a finite number"),
    ("prompt: fancy\n", "r.yaml:1: prompt: input should be 'auto', 'chat' or 'few-shot', got 'fancy'"),
    ("beams: 4\n", "r.yaml:1: unknown option 'beams'"),
])
def test_every_recipe_value_is_checked_where_it_enters(tiny_model, tmp_path, recipe, expected):
    path = tmp_path / "r.yaml"
    path.write_text(recipe)
    one_line_error(tts("solve", "1+1", "--policy", tiny_model, "--config", path), expected)
    data, out = problems(tmp_path, 2), tmp_path / "o.jsonl"
    one_line_error(tts("grade", data, "--out", out, "--policy", tiny_model, "--config", path), expected)
    assert not out.exists()


def test_a_bad_profile_value_stops_before_any_problem_is_recorded(tiny_model, tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("tts_profile: 1\nchoices:\n  - {bin: easy, budget: 4, strategy: majority, accuracy: high, "
                       "flops: 1, problems: 1}\n")
    data, out = problems(tmp_path, 3), tmp_path / "r.jsonl"
    r = tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "auto", "--profile", profile, *FAST)
    one_line_error(r, "p.yaml:3: choices[1].accuracy: input should be a valid number, got 'high'")
    assert not out.exists() or read_records(out) == []


def test_a_registry_value_is_checked_with_its_line(tiny_model, tmp_path):
    reg = tmp_path / "models.yaml"
    reg.write_text(f"models:\n  - name: mine\n    role: policy\n    params: lots\n    path: {tiny_model}\n")
    one_line_error(tts("solve", "1+1", "--policy", "mine", "--models-file", reg),
                   "models.yaml:4: models[1].params: input should be a valid number", "got 'lots'")
    one_line_error(tts("models", "list", "--models-file", reg), "models[1].params")


def test_json_output_is_strict_json(tiny_model):
    from tts_cli.results import json_line
    assert json.loads(json_line({"score": float("nan"), "x": [float("inf"), 1.0]})) == {"score": None,
                                                                                         "x": [None, 1.0]}
    r = tts("solve", "What is 2 + 2?", "--policy", tiny_model, "--strategy", "best-of-n", "--n", "2",
            "--prm", "confidence", "--json", *FAST)
    assert r.exit_code == 0 and "NaN" not in r.stdout
    json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))


def test_seed_minus_one_draws_a_seed_and_records_it(tiny_model, tmp_path):
    first = tts("solve", "What is 2 + 2?", "--policy", tiny_model, *MAJ, "--seed", "-1", "--json")
    assert first.exit_code == 0, first.output
    seed = json.loads(first.stdout)["config"]["seed"]
    assert seed > 0
    again = tts("solve", "What is 2 + 2?", "--policy", tiny_model, *MAJ, "--seed", str(seed), "--json")
    assert json.loads(again.stdout)["candidates"] == json.loads(first.stdout)["candidates"]  # repeatable
    # grade records the drawn seed in the header and every record; a resume with -1 keeps it
    data, out = problems(tmp_path, 3), tmp_path / "r.jsonl"
    r = grade(data, out, tiny_model, "--seed", "-1", "--limit", "2")
    assert r.exit_code == 0 and "seed: drew" in r.stderr
    header = json.loads(out.read_text().splitlines()[0])
    drawn = header["run"]["seed"]
    assert drawn > 0 and {rec["config"]["seed"] for rec in read_records(out)} == {drawn}
    r = grade(data, out, tiny_model, "--seed", "-1")
    assert r.exit_code == 0, r.output
    assert {rec["config"]["seed"] for rec in read_records(out)} == {drawn} and len(read_records(out)) == 3


@pytest.mark.parametrize("value,kind", [(None, "null"), (5, "int"), (["a"], "list"), ({"a": 1}, "dict")])
def test_a_problem_field_that_is_not_text_is_an_error_naming_the_line(tiny_model, tmp_path, value, kind):
    data = write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1", "answer": "2"}, {"problem": value, "answer": "1"}])
    one_line_error(grade(data, tmp_path / "r.jsonl", tiny_model), "d.jsonl:2", "'problem'", kind)


def test_bom_and_crlf_data_files_are_read(tiny_model, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + b'{"problem": "1+1", "answer": "2"}\r\n{"problem": "2+2", "answer": "4"}\r\n')
    r = grade(data, tmp_path / "r.jsonl", tiny_model)
    assert r.exit_code == 0, r.output
    assert [rec["problem"] for rec in read_records(tmp_path / "r.jsonl")] == ["1+1", "2+2"]


def test_skip_bad_skips_undecodable_lines_too(tiny_model, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'{"problem": "1+1", "answer": "2"}\n{"problem": "\xff\xfe", "answer": "1"}\n'
                     b'{"problem": "2+2", "answer": "4"}\n')
    one_line_error(grade(data, tmp_path / "r.jsonl", tiny_model), "d.jsonl:2: not UTF-8")
    r = grade(data, tmp_path / "r.jsonl", tiny_model, "--skip-bad")
    assert r.exit_code == 0, r.output
    records = read_records(tmp_path / "r.jsonl")
    assert [rec.get("error") for rec in records].count(None) == 2
    assert any("not UTF-8" in (rec.get("error") or "") for rec in records)


@pytest.mark.parametrize("target", ["/dev/null", "/dev/full"])
def test_devices_are_refused_as_results_files(tiny_model, tmp_path, target):
    one_line_error(grade(problems(tmp_path, 1), target, tiny_model), target, "not a regular file")


def test_a_full_disk_is_one_line_saying_what_is_safe(tiny_model, tmp_path, monkeypatch):
    from tts_cli import results
    data, out = problems(tmp_path, 4), tmp_path / "r.jsonl"
    assert grade(data, out, tiny_model, "--limit", "2").exit_code == 0
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_then_full(fd):
        calls["n"] += 1
        if calls["n"] > 1:  # the third problem's record: the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)
    monkeypatch.setattr(results.os, "fsync", fsync_then_full)
    r = grade(data, out, tiny_model, "--concurrency", "1")
    assert r.exit_code == 2 and "Traceback" not in r.output
    last = r.stderr.strip().splitlines()[-1]  # after the progress of the problems that finished
    assert last.startswith("error:") and "r.jsonl: cannot write (No space left on device)" in last
    assert "3 finished records are safely in it" in last
    assert len(read_records(out)) >= 3  # the fourth was written but not fsynced


def test_compare_out_that_is_a_file_is_refused(tiny_model, tmp_path):
    data = problems(tmp_path, 1)
    (tmp_path / "cmp").write_text("x")
    one_line_error(tts("compare", data, "--strategies", "cot", "--out", tmp_path / "cmp", "--policy", tiny_model),
                   "cmp: is a file")


def test_a_results_line_that_is_not_a_record_is_an_error(tiny_model, tmp_path):
    data, out = problems(tmp_path, 3), tmp_path / "r.jsonl"
    assert grade(data, out, tiny_model, "--limit", "1").exit_code == 0
    with open(out, "a") as f:
        f.write("[1, 2]\n")
    one_line_error(grade(data, out, tiny_model), "r.jsonl:3: not a results record (a JSON list)")


def test_file_dash_with_bad_stdin_is_one_line(tiny_model):
    r = tts("solve", "--file", "-", "--policy", tiny_model, input=b"\xff\xfe bad bytes")
    one_line_error(r, "not UTF-8")
    closed = subprocess.run([sys.executable, "-m", "tts_cli", "solve", "--file", "-", "--policy", str(tiny_model)],
                            capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 2 and "Traceback" not in closed.stderr, closed.stderr
    assert closed.stderr.startswith("error:")


def test_a_configuration_error_is_never_recorded_as_a_problems_failure(tmp_path):
    """Only a failure that belongs to a problem is recorded; anything else stops the run (the
    records already written stay)."""
    from tts_cli.datasets import Problem
    from tts_cli.grade import grade_runs
    from tts_cli.results import ProblemFailed, ResultsFile
    ps = [Problem(id=str(i), problem=f"p{i}", answer="1", line=i + 1) for i in range(4)]

    def solve_many(pairs):
        for key, p in pairs:
            if p.id == "1":
                yield (key, p), ProblemFailed("a worker died running this problem 3 times")
            elif p.id == "2":
                yield (key, p), ValueError("Unknown format code 'f' for object of type 'str'")
            else:
                from test_auto import fake_result
                yield (key, p), fake_result("1", 1.0)

    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError):
        grade_runs(ps, {"": ResultsFile(out, {"run": 1})}, solve_many)
    recs = read_records(out)
    assert [r["id"] for r in recs] == ["0", "1"] and recs[1]["error"].startswith("a worker died")

    # --retry-errors solves the error record again; the later record supersedes it
    def fixed(pairs):
        from test_auto import fake_result
        for key, p in pairs:
            yield (key, p), fake_result("1", 1.0)
    summary = grade_runs(ps, {"": ResultsFile(out, {"run": 1})}, fixed, retry_errors=True)[""]
    assert [r["id"] for r in summary.records] == ["0", "1", "2", "3"] and not any(r.get("error") for r in summary.records)
    assert len(read_records(out)) == 5 and summary.duplicates == 0  # (counted when the file is next opened)


def test_sigterm_mid_grade_keeps_records_and_says_so(tiny_model, tmp_path):
    data, out = problems(tmp_path, 16), tmp_path / "r.jsonl"
    cmd = [sys.executable, "-m", "tts_cli", "grade", str(data), "--out", str(out), "--policy", str(tiny_model),
           "--strategy", "majority", "--n", "2", "--max-steps", "4", "--max-step-tokens", "40", "--threads", "1",
           "--concurrency", "1"]
    code, err = interrupt_when_written(cmd, out, sig=signal.SIGTERM)
    assert code == 143, err
    err = " ".join(err.split())
    assert "terminated:" in err and "rerun to resume" in err and "Traceback" not in err
    kept = read_records(out)
    assert 1 <= len(kept) < 16, "the signal did not land mid-run"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(read_records(out)) == 16 and read_records(out)[: len(kept)] == kept
    assert record_lines(out) == 16


def test_a_ctrl_c_during_a_write_lands_after_the_record_is_on_disk_and_counted(tmp_path, monkeypatch):
    # the "N new records" line after an interrupt counts what the file gained: a Ctrl-C that
    # arrives between the record's bytes reaching the disk and the count used to be lost from it
    import os
    import signal

    from tts_cli.results import ResultsFile, read_records
    out = tmp_path / "r.jsonl"
    f = ResultsFile(out, {"run": 1})
    real = ResultsFile._append

    def append_then_interrupt(self, text):
        real(self, text)
        os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(ResultsFile, "_append", append_then_interrupt)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as Python has it
    try:
        with pytest.raises(KeyboardInterrupt):
            f.write({"key": "a:1", "id": "a", "answer": "1"})
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    finally:
        signal.signal(signal.SIGINT, before)
    assert f.written == 1 and [r["key"] for r in read_records(out)] == ["a:1"]


def test_an_auto_run_resumes_after_calibrate_saves_the_same_choices_again(tiny_model, tmp_path):
    # calibrate resumed rewrites its profile (a new `created`, new held-out figures) with the same
    # choices: auto's answers do not change, so its results file goes on; another choice does not
    profile = tmp_path / "p.yaml"
    choices = "".join(f"  - {{bin: {b}, budget: 2, strategy: majority, accuracy: 0.5, flops: 1.0, problems: 4}}\n"
                      for b in ("easy", "medium", "hard"))
    profile.write_text("tts_profile: 2\ncreated: '2026-01-01T00:00:00+00:00'\nchoices:\n" + choices)
    data, out = problems(tmp_path, 2), tmp_path / "r.jsonl"
    auto = ("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "auto", "--n", "2",
            "--profile", profile, *FAST)
    first = tts(*auto, "--limit", "1")
    assert first.exit_code == 0, first.output
    profile.write_text("tts_profile: 2\ncreated: '2026-02-02T00:00:00+00:00'\nchoices:\n"
                       + choices.replace("accuracy: 0.5", "accuracy: 0.6") + "heldout: {share: 0.3}\n")
    again = tts(*auto)
    assert again.exit_code == 0, again.output
    assert len(read_records(out)) == 2
    profile.write_text("tts_profile: 2\nchoices:\n" + choices.replace("hard, budget: 2, strategy: majority",
                                                                      "hard, budget: 2, strategy: cot"))
    one_line_error(tts(*auto), "belongs to another run", "profile", "--restart")
