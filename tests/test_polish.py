"""What a user meets: one registry file, locked results files, hostile chat templates, honest
fallback answers, greedy CoT that does not depend on the budget, bugs shown as bugs."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_package_reads_the_top_level_registry_and_the_wheel_ships_it(tmp_path):
    from tts_cli.registry import BUNDLED, load_registry
    top = REPO / "models.yaml"
    assert BUNDLED.resolve() == top.resolve()  # in the source tree: one file
    assert "smollm2-135m-instruct" in load_registry()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("tts_cli-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert z.read("tts_cli/models.yaml") == top.read_bytes()  # installed, it is the same file


HOLD = ("import sys, time\n"
        "from tts_cli.grade import ResultsFile\n"
        "f = ResultsFile(sys.argv[1])\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n")


def hold_lock(path, seconds):
    """Another tts run holding `path` (a process with the results file open) for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_the_same_results_file_stops_and_names_the_holder(tiny_model, tmp_path):
    from cli_helpers import FAST, one_line_error, tts, write_jsonl
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 1 + 1?", "answer": "#### 2"}])
    out = tmp_path / "r.jsonl"
    holder = hold_lock(out, 60)
    try:
        r = tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "cot", *FAST)
        one_line_error(r, str(out), f"in use by another tts run (process {holder.pid})", "--wait")
        assert out.read_text() == ""  # nothing solved, nothing appended
        # compare's run files are locked the same way
        cmp = tmp_path / "cmp"
        holder2 = hold_lock(cmp / "cot_n1.jsonl", 60)
        try:
            r = tts("compare", data, "--strategies", "cot", "--out", cmp, "--policy", tiny_model, *FAST)
            one_line_error(r, "cot_n1.jsonl", f"process {holder2.pid}")
        finally:
            holder2.kill()
    finally:
        holder.kill()
        holder.wait()


def test_wait_starts_when_the_other_run_ends(tiny_model, tmp_path):
    from cli_helpers import FAST, write_jsonl
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 1 + 1?", "answer": "#### 2"}])
    out = tmp_path / "r.jsonl"
    holder = hold_lock(out, 3)
    r = subprocess.run([sys.executable, "-m", "tts_cli", "grade", str(data), "--out", str(out), "--policy",
                        str(tiny_model), "--strategy", "cot", *FAST, "--wait"], capture_output=True, text=True,
                       timeout=120)
    holder.wait()
    assert r.returncode == 0, r.stderr
    assert f"in use by another tts run (process {holder.pid}); waiting" in " ".join(r.stderr.split())
    assert len(out.read_text().splitlines()) == 1
