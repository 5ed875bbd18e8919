"""Data sets by name: the bundled sets resolve to files in the package (and ship in the wheel), a
file beats a name, an unknown name or a failed pull is one line, and a pulled set is found by
name. The hub is never reached: tests stand a fake hf_hub_download in for it."""

import json
import sys
import zipfile
from pathlib import Path

import pytest

from cli_helpers import FAST, one_line_error, read_records, tts, write_jsonl
from conftest import SHARED_DATA
from tts_cli.datasets import BUNDLED_DATA, DATA_SETS, DataError, data_home, pull, read_all_problems, resolve_data

BUNDLED = [s for s in DATA_SETS.values() if s.file]
MATH500_ROWS = [{"problem": f"What is ${i} + 1$?", "solution": f"It is $\\boxed{{{i + 1}}}$.", "answer": str(i + 1),
                 "subject": "Prealgebra", "level": 1, "unique_id": f"test/prealgebra/{i}.json"} for i in range(3)]


class FakeHub:
    """hf_hub_download with files from this machine: records what was asked for."""

    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.calls = []

    def __call__(self, repo_id, filename, *, repo_type=None, revision=None, **kw):
        self.calls.append((repo_id, filename, repo_type, revision))
        return str(self.files[filename])


def fake_hub(monkeypatch, files: dict[str, Path]) -> FakeHub:
    import huggingface_hub
    hub = FakeHub(files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    return hub


@pytest.mark.parametrize("name,count", [("gsm8k", 1319), ("arith-test", 90), ("arith-calib", 24),
                                        ("arith-train", 262), ("stories-test", 64), ("mixed-test", 60)])
def test_a_bundled_name_is_its_file_in_the_package(name, count):
    assert resolve_data(name).parent == BUNDLED_DATA
    problems, bad = read_all_problems(name)
    assert len(problems) == count == DATA_SETS[name].problems and not bad


def test_gsm8k_references_are_the_numbers_after_the_hashes():
    problems, _ = read_all_problems("gsm8k")
    assert problems[0].answer == "18" and problems[0].problem.startswith("Janet")


def test_data_list_shows_every_set_and_where_it_is():
    r = tts("data", "list")
    assert r.exit_code == 0, r.output
    for s in DATA_SETS.values():
        assert s.name in r.output and str(s.problems) in r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") > 4}
    assert "bundled" in rows["gsm8k"] and "fetchable" in rows["math500"] and "fetchable" in rows["aime24"]


def test_data_info_gives_source_licence_and_place():
    r = tts("data", "info", "gsm8k")
    assert r.exit_code == 0, r.output
    assert "licence: MIT" in r.output and "openai/gsm8k" in r.output and "where: bundled" in r.output
    assert "problems: 1319" in r.output
    r = tts("data", "info", "math500")
    assert "where: fetchable" in r.output and "DMCA" in r.output and "HuggingFaceH4/MATH-500" in r.output
    one_line_error(tts("data", "info", "math5000"), "unknown data set 'math5000'", "math500")


def test_a_file_beats_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "gsm8k", [{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}])
    assert resolve_data("gsm8k") == Path("gsm8k")
    problems, _ = read_all_problems("gsm8k")
    assert [p.answer for p in problems] == ["2"]


def test_a_missing_path_is_still_a_missing_file(tmp_path):
    for missing in (tmp_path / "none.jsonl", "none.jsonl", "runs/none"):
        with pytest.raises(DataError, match="does not exist"):
            read_all_problems(missing)


@pytest.mark.parametrize("command", ["grade", "compare", "calibrate", "train-prm"])
def test_an_unknown_name_is_one_line_listing_the_names(tmp_path, monkeypatch, tiny_model, command):
    monkeypatch.chdir(tmp_path)
    out = {"compare": "cmp", "calibrate": "p.yaml", "train-prm": "my-prm"}.get(command, "o.jsonl")
    r = tts(command, "gsm9k", "--out", out, "--policy", tiny_model)
    one_line_error(r, "gsm9k", "no data set of that name", "gsm8k", "math500", "arith-test", "tts data list")


def test_grade_a_bundled_set_by_name(tmp_path, tiny_model):
    out = tmp_path / "o.jsonl"
    r = tts("grade", "gsm8k", "--limit", 2, "--out", out, "--policy", tiny_model, "--strategy", "cot", *FAST)
    assert r.exit_code == 0, r.output
    assert len(read_records(out)) == 2


def test_pull_math500_then_grade_it_by_name(tmp_path, monkeypatch, tiny_model):
    hub = fake_hub(monkeypatch, {"test.jsonl": write_jsonl(tmp_path / "test.jsonl", MATH500_ROWS)})
    out = tmp_path / "o.jsonl"
    one_line_error(tts("grade", "math500", "--out", out, "--policy", tiny_model), "math500 is not downloaded",
                   "tts data pull math500")
    r = tts("data", "pull", "math500")
    assert r.exit_code == 0, r.output
    assert "math500: 3 problems (from HuggingFaceH4/MATH-500)" in r.output
    assert hub.calls == [("HuggingFaceH4/MATH-500", "test.jsonl", "dataset", DATA_SETS["math500"].revision)]
    assert (data_home() / "math500.jsonl").read_bytes() == (tmp_path / "test.jsonl").read_bytes()  # as it came
    assert "where: downloaded" in tts("data", "info", "math500").output
    r = tts("grade", "math500", "--limit", 2, "--out", out, "--policy", tiny_model, "--strategy", "cot", *FAST)
    assert r.exit_code == 0, r.output
    assert [rec["id"] for rec in read_records(out)] == ["test/prealgebra/0.json", "test/prealgebra/1.json"]


def test_the_real_math500_pulls_as_500_problems(monkeypatch):
    source = SHARED_DATA / "math500.jsonl"
    if not source.exists():
        pytest.skip(f"{source} not found (it lives outside the repository)")
    fake_hub(monkeypatch, {"test.jsonl": source})
    pull(DATA_SETS["math500"])
    assert len(read_all_problems("math500")[0]) == 500


def test_a_failed_pull_is_one_line_naming_the_repo(monkeypatch):
    import huggingface_hub

    def offline(*args, **kw):
        raise OSError("[Errno -2] Name or service not known\nwhile requesting HEAD https://huggingface.co/...")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    one_line_error(tts("data", "pull", "math500"), "math500", "HuggingFaceH4/MATH-500", "OSError",
                   "Name or service not known")
    assert not data_home().exists() or not any(data_home().iterdir())
    one_line_error(tts("data", "pull", "gsm9k"), "unknown data set 'gsm9k'", "gsm8k")


def test_a_pulled_file_tts_cannot_read_is_not_kept(tmp_path, monkeypatch):
    fake_hub(monkeypatch, {"test.jsonl": write_jsonl(tmp_path / "test.jsonl", [{"text": "1+1", "label": 2}])})
    one_line_error(tts("data", "pull", "math500"), "HuggingFaceH4/MATH-500", "no problem field")
    assert not any(data_home().iterdir())


def test_pulling_a_bundled_set_says_where_it_is(monkeypatch):
    hub = fake_hub(monkeypatch, {})
    r = tts("data", "pull", "gsm8k")
    assert r.exit_code == 0 and "gsm8k: 1319 problems (bundled)" in r.output and hub.calls == []


def test_aime24_parquet_becomes_jsonl(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [{"id": 60 + i, "problem": f"Find {i} + 1.", "solution": "...", "answer": str(i + 1).zfill(3),
             "url": "https://artofproblemsolving.com/wiki", "year": "2024"} for i in range(2)]
    parquet = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    fake_hub(monkeypatch, {"data/train-00000-of-00001.parquet": parquet})
    r = tts("data", "pull", "aime24")
    assert r.exit_code == 0, r.output
    assert [json.loads(line) for line in (data_home() / "aime24.jsonl").read_text().splitlines()] == rows
    assert [p.answer for p in read_all_problems("aime24")[0]] == ["001", "002"]


def test_aime24_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow...` now fails, as where it is missing
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    parquet = tmp_path / "train-00000-of-00001.parquet"
    parquet.write_bytes(b"PAR1")
    fake_hub(monkeypatch, {"data/train-00000-of-00001.parquet": parquet})
    one_line_error(tts("data", "pull", "aime24"), "HuggingFaceH4/aime_2024", "pip install pyarrow")


def test_the_wheel_ships_the_bundled_sets_and_their_sources(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for s in BUNDLED:  # the files themselves (arith-*.jsonl are links in the source tree)
            assert z.read(f"tts_cli/data/{s.file}") == (BUNDLED_DATA / s.file).read_bytes(), s.name
        assert "tts_cli/data/README.md" in names
        assert not [n for n in names if "math500" in n or "aime" in n]  # fetched, never shipped
        assert sum(z.getinfo(f"tts_cli/data/{s.file}").compress_size for s in BUNDLED) < 400_000


# --- the examples run on a fresh clone --------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
DATA_COMMANDS = ("grade", "compare", "calibrate", "train-prm")


def example_blocks() -> list[tuple[str, list[str]]]:
    """(where, lines) for each README shell block and each command module's docstrings."""
    import re
    blocks = [("README.md", block.splitlines())
              for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)]
    blocks += [(p.name, p.read_text().splitlines()) for p in sorted((REPO / "tts_cli" / "cli").glob("*.py"))]
    return blocks


def test_every_example_names_a_data_set_or_a_file_of_the_repo():
    """`tts grade X` and the other data commands in the README and in --help: X is a data set's
    name, a file in the repository, or a file an earlier line of the same example writes."""
    import shlex
    wrong = []
    for where, lines in example_blocks():
        for n, line in enumerate(lines):
            for command in line.split("&&"):
                words = command.split("#")[0].split()
                if words[:1] != ["tts"] or len(words) < 3:
                    continue
                if words[1] == "calibrate" and words[2] == "--show":  # reads a profile: written before
                    data = words[3]
                elif words[1] in DATA_COMMANDS:
                    data = words[2]
                elif words[1] == "solve" and "--file" in words and words[words.index("--file") + 1] != "-":
                    data = words[words.index("--file") + 1]
                else:
                    continue
                written_before = any(data in earlier for earlier in lines[:n])
                if data not in DATA_SETS and not (REPO / data).exists() and not written_before:
                    wrong.append(f"{where}: {shlex.join(words[:3])}")
    assert not wrong, wrong
    assert not [line for _, lines in example_blocks() for line in lines if "../shared" in line]
