"""Property: whatever state a results file and its data file are in (cut short, lines inserted,
removed, duplicated or swapped, values of the wrong type, bytes that are not UTF-8), `tts grade`
ends with exit 0 or a one-line error (exit 2), never a traceback, and every valid record that
was in the results file is still there afterwards."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import FAST, tts, write_jsonl

N = 5
ARGS = ["--strategy", "majority", "--n", "1", *FAST, "--concurrency", "2"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_model):
    """A data file of N problems and the results file a finished grade wrote for it."""
    d = tmp_path_factory.mktemp("base")
    data = write_jsonl(d / "d.jsonl", [{"id": f"q{i}", "question": f"What is {i} + 1?", "answer": f"#### {i + 1}"}
                                       for i in range(N)])
    out = d / "r.jsonl"
    r = tts("grade", data, "--out", out, "--policy", tiny_model, *ARGS)
    assert r.exit_code == 0, r.output
    return data.read_bytes(), out.read_bytes()


JUNK_LINES = st.sampled_from([b"", b"not json", b"[1, 2]", b"null", b"42", b'"text"', b'{"key": 5}', b"{}",
                              b'{"key": "x:1", "answer": "3"}', b'{"question": null, "answer": "1"}',
                              b'{"question": 7, "answer": "1"}', b'{"question": ["a"], "answer": "1"}',
                              b'{"question": "What is 9 + 9?", "answer": 18}', b"\xff\xfe\x00bad",
                              b'{"tts_results": 1, "run": {}}', b'{"tts_results": 2}', b"\xef\xbb\xbf{}"])


@st.composite
def damaged(draw, content: bytes) -> bytes:
    """`content` with a few random edits of its lines."""
    lines = content.split(b"\n")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["cut", "insert", "remove", "duplicate", "swap", "replace", "flip", "crlf"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "cut":
            text = b"\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split(b"\n")
        elif op == "insert":
            lines.insert(i, draw(JUNK_LINES))
        elif op == "remove" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "replace" and lines:
            lines[i] = draw(JUNK_LINES)
        elif op == "flip" and lines and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + bytes([lines[i][k] ^ 0x80]) + lines[i][k + 1:]
        elif op == "crlf":
            lines = [line + b"\r" if line else line for line in lines]
    return b"\n".join(lines)


def valid_records(content: bytes) -> list[str]:
    """The lines of a results file that are records (JSON objects with a key), canonicalised."""
    out = []
    for line in content.split(b"\n"):
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("key"), str) and "tts_results" not in obj:
            out.append(json.dumps(obj, sort_keys=True))
    return out


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                      HealthCheck.too_slow])
@given(data=st.data())
def test_no_run_loses_a_valid_record_or_ends_in_a_traceback(data, base, tiny_model, tmp_path_factory):
    data_bytes, results_bytes = base
    d = tmp_path_factory.mktemp("case")
    data_file, out = d / "d.jsonl", d / "r.jsonl"
    data_file.write_bytes(data.draw(damaged(data_bytes), label="data file"))
    out.write_bytes(data.draw(damaged(results_bytes), label="results file"))
    before = valid_records(out.read_bytes())
    extra = data.draw(st.sampled_from([[], ["--skip-bad"], ["--limit", "2"], ["--retry-errors"]]), label="flags")
    r = tts("grade", data_file, "--out", out, "--policy", tiny_model, *ARGS, *extra)
    assert r.exit_code in (0, 2), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        assert r.stderr.strip().splitlines()[-1].startswith("error:"), r.stderr
    after = valid_records(out.read_bytes())
    missing = [rec for rec in before if rec not in after]
    assert not missing, f"lost {len(missing)} valid records"
