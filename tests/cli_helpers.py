"""Driving the `tts` command from tests: Typer's CliRunner, data files, and the one-line error
every bad input must give."""

import json
import sys

from typer.testing import CliRunner

from tts_cli.cli import app
from tts_cli.results import read_records  # noqa: F401 - the tests' way to read a results file

runner = CliRunner()
FAST = ["--max-steps", "2", "--max-step-tokens", "8", "--threads", "2"]


def tts(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def grade_command(tmp_path, model, out, *, n, concurrency, step_tokens):
    """A `tts grade` subprocess command (majority N=2 on `model`) over n GSM8K-style problems
    written to tmp_path, results to `out`: for tests that kill or interrupt a real run."""
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": f"What is {i} + 1?", "answer": f"x\n#### {i + 1}"}
                                             for i in range(n)])
    return [sys.executable, "-m", "tts_cli", "grade", str(data), "--out", str(out), "--policy", str(model),
            "--strategy", "majority", "--n", "2", "--max-steps", "4", "--max-step-tokens", str(step_tokens),
            "--threads", "1", "--concurrency", str(concurrency)]


def record_lines(path) -> int:
    """Records written so far to a results file (its lines, less the header)."""
    return max(0, path.read_text().count("\n") - 1) if path.exists() else 0


def interrupt_when_written(cmd, path, lines=1, timeout=120, sig=None):
    """Start `cmd`, send it Ctrl-C (SIGINT, or `sig`) once `path` holds `lines` records; (return
    code, stderr)."""
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline and record_lines(path) < lines:
        time.sleep(0.02)
    proc.send_signal(sig or signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def one_line_error(r, *expected):
    """Bad input: exit 2 (not 1, an uncaught exception), no traceback, one `error:` line naming
    what is wrong."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    text = r.stderr.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1, text
    for e in expected:
        assert e in text, text
