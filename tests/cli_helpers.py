"""Driving the `tts` command from tests: Typer's CliRunner, data files, and the one-line error
every bad input must give."""

import json

from typer.testing import CliRunner

from tts_cli.cli import app

runner = CliRunner()
FAST = ["--max-steps", "2", "--max-step-tokens", "8", "--threads", "2"]


def tts(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one_line_error(r, *expected):
    """Bad input: exit 2 (not 1, an uncaught exception), no traceback, one `error:` line naming
    what is wrong."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    text = r.stderr.strip()
    assert text.startswith("error:") and len(text.splitlines()) == 1, text
    for e in expected:
        assert e in text, text
