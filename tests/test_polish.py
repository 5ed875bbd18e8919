"""What a user meets: one registry file, locked results files, hostile chat templates, honest
fallback answers, greedy CoT that does not depend on the budget, bugs shown as bugs."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cli_helpers import read_records

REPO = Path(__file__).resolve().parent.parent


def test_the_package_reads_the_top_level_registry_and_the_wheel_ships_it(wheel):
    from tts_cli.registry import BUNDLED, load_registry
    top = REPO / "models.yaml"
    assert BUNDLED.resolve() == top.resolve()  # in the source tree: one file
    assert "smollm2-135m-instruct" in load_registry()
    with zipfile.ZipFile(wheel) as z:
        assert z.read("tts_cli/models.yaml") == top.read_bytes()  # installed, it is the same file


HOLD = ("import sys, time\n"
        "from tts_cli.results import ResultsFile\n"
        "f = ResultsFile(sys.argv[1], {'strategy': 'cot'})\n"
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
        # and calibrate's, before any model loads (the policy here does not even exist)
        holder3 = hold_lock(tmp_path / "p.yaml.runs" / "cot_n1.jsonl", 60)
        try:
            r = tts("calibrate", data, "--out", tmp_path / "p.yaml", "--policy", tmp_path / "none.gguf", *FAST)
            one_line_error(r, "cot_n1.jsonl", f"process {holder3.pid}")
        finally:
            holder3.kill()
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
    assert len(read_records(out)) == 1


RAISES = "{{ raise_exception('this template refuses everything') }}"
UNSAFE = "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}{{ messages[0]['content'] }}"
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}"
             "{{ raise_exception('System role not supported') }}{% endif %}"
             "<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>")


@pytest.fixture(scope="module")
def templated(tmp_path_factory):
    from tiny_gguf import write_tiny_llama
    d = tmp_path_factory.mktemp("templates")
    return {name: write_tiny_llama(d / f"{name}.gguf", chat_template=t)
            for name, t in (("raises", RAISES), ("unsafe", UNSAFE), ("no-system", NO_SYSTEM))}


def test_a_template_that_raises_is_one_line_naming_the_model_and_grade_keeps_nothing_false(templated, tmp_path):
    from cli_helpers import FAST, one_line_error, tts, write_jsonl
    r = tts("solve", "What is 1 + 1?", "--policy", templated["raises"], "--strategy", "cot", *FAST)
    one_line_error(r, "raises.gguf: its chat template cannot render a prompt", "this template refuses everything",
                   "--prompt few-shot")
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"}
                                              for i in range(3)])
    out = tmp_path / "r.jsonl"
    r = tts("grade", data, "--out", out, "--policy", templated["raises"], "--strategy", "cot", *FAST)
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "raises.gguf" in errors[0] and "--prompt few-shot" in errors[0], r.stderr
    assert out.read_text() == ""  # no problem recorded as failed for the model's fault: a rerun redoes them
    r = tts("grade", data, "--out", out, "--policy", templated["raises"], "--strategy", "cot", "--prompt",
            "few-shot", *FAST)
    assert r.exit_code == 0, r.output
    assert len(read_records(out)) == 3


def test_a_template_reaching_for_python_internals_stays_in_the_sandbox(templated, tmp_path, monkeypatch):
    from cli_helpers import FAST, one_line_error, tts
    monkeypatch.chdir(tmp_path)
    r = tts("solve", "What is 1 + 1?", "--policy", templated["unsafe"], "--strategy", "cot", *FAST)
    one_line_error(r, "unsafe.gguf", "SecurityError", "--prompt few-shot")
    assert not (tmp_path / "PWNED").exists()


def test_a_template_that_rejects_the_system_role_gets_it_folded_into_the_user_message(templated):
    from cli_helpers import FAST, tts
    from tts_cli.engine import Model
    from tts_cli.engine.chat import render_chat
    model = Model(templated["no-system"])
    prompt = render_chat(model, [{"role": "system", "content": "Think step by step."},
                                 {"role": "user", "content": "What is 1 + 1?"}])
    assert prompt == "<|user|>Think step by step.\n\nWhat is 1 + 1?\n<|assistant|>"
    model.close()
    r = tts("solve", "What is 1 + 1?", "--policy", templated["no-system"], "--strategy", "cot", "--json", *FAST)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("text,answer", [
    # seen: a whole sentence came back as the answer and was voted on
    ("So the answer is that there are 3 * 120 = 332 additional boxes of 12 pencils remaining.", "12"),
    ("The answer is that it cannot be done.", None),
    ("The answer is 12 apples.", "12"),
    ("The answer is $x = 5$.", "x = 5"),
    ("The answer is \\frac{1}{2}.", "\\frac{1}{2}"),
    ("Thus the answer is: 3/4\n", "3/4"),
])
def test_a_fallback_answer_is_a_number_or_an_expression_or_nothing(text, answer):
    from tts_cli.answers import extract_answer
    got = extract_answer(text)
    assert got.answer == answer
    if answer is not None:
        assert got.method in ("answer_is", "last_number")


@pytest.mark.slow
def test_greedy_cot_does_not_depend_on_the_budget_of_the_command(smollm2):
    """cot_n4 and cot_n8 of a calibration once scored differently: greedy CoT must give the same
    path whatever N the engine was sized for and whatever else shares it."""
    from tts_cli.search import SearchConfig
    from tts_cli.settings import ModelSettings
    from tts_cli.solver import Session
    texts = []
    for n, concurrency in ((1, 1), (4, 1), (8, 2), (16, 3)):
        session = Session(ModelSettings(policy=str(smollm2), threads=2))
        cfg = SearchConfig(n=n, max_steps=2, max_step_tokens=16, prompt="few-shot")
        scheduler = session.open([("cot", cfg), ("majority", cfg)], concurrency)
        try:
            from tts_cli.datasets import Problem
            problems = [Problem(id=str(i), line=i + 1, problem=f"What is {i} + 7?", answer=None) for i in range(3)]
            plan = {"cot": ("cot", cfg), "maj": ("majority", cfg)}
            pairs = [(k, p) for p in problems for k in ("maj", "cot")]
            out = {(k, p.id): r for (k, p), r in session.solve_many(scheduler, pairs, plan.__getitem__)}
        finally:
            session.close(scheduler)
        texts.append([out[("cot", p.id)].candidates[0].text for p in problems])
    assert all(t == texts[0] for t in texts), texts


def test_a_broken_engine_invariant_shows_as_a_bug_not_as_bad_input(tiny_model, tmp_path, monkeypatch):
    """A sequence used after release is tts_cli's bug: no `error:` line with exit 2 as for bad
    input, no problem recorded as failed; the run stops with the bug's traceback."""
    from cli_helpers import FAST, tts, write_jsonl
    from tts_cli import search
    from tts_cli.engine import EngineBug, EngineError
    from tts_cli.search.types import Generate

    def buggy_cot(search_, config):
        run = search_.run("cot", config, use_verifier=False)
        path = run.start(greedy=True)
        run.engine.release(path.seq)
        yield Generate([path.seq], stop=["\n\n"], max_tokens=4)  # a released sequence

    monkeypatch.setitem(search.STRATEGIES, "cot", buggy_cot)
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 1 + 1?", "answer": "#### 2"}])
    out = tmp_path / "r.jsonl"
    r = tts("grade", data, "--out", out, "--policy", tiny_model, "--strategy", "cot", *FAST)
    assert isinstance(r.exception, EngineBug) and not isinstance(r.exception, EngineError)
    assert "internal error (a bug in tts_cli" in str(r.exception)
    assert r.exit_code == 1 and "error:" not in r.stderr
    assert out.read_text() == ""


def big_tree():
    """A beam-search-like tree: 8 beams, 6 levels, 4 children each, most pruned, some finished."""
    from tts_cli.search import Node
    tree = [Node(id=0, parent=None, depth=0, step="", state="root")]
    level = [0]
    for depth in range(1, 7):
        nxt = []
        for p in level:
            for c in range(4):
                i = len(tree)
                score = ((i * 37) % 100) / 100
                state = "active" if c < 2 else "pruned"
                tree.append(Node(id=i, parent=p, depth=depth, step=f"step {i} " + "words " * 30, score=score,
                                 state=state))
                if state == "active":
                    nxt.append(i)
        level = nxt[:8]
        for i in nxt[8:]:
            tree[i].state = "pruned"
    for i in level[:3]:
        tree[i].state, tree[i].answer = "finished", str(i)
    return tree


@pytest.mark.parametrize("height,width", [(6, 40), (12, 80), (24, 80), (50, 200)])
def test_the_live_tree_fits_the_terminal_and_keeps_the_frontier(height, width):
    from rich.console import Console
    from tts_cli.live import render_tree
    tree = big_tree()
    console = Console(width=width, height=height, record=True, file=open("/dev/null", "w"))
    console.print(render_tree(tree, "beam N=8", max_lines=height - 1, width=width))
    text = console.export_text()
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= height - 1, text
    assert "more nodes" in text and "pruned" in text  # the rest is counted, not dropped silently
    frontier = sorted((n for n in tree if n.state == "active" and not any(k.parent == n.id for k in tree)),
                      key=lambda n: -n.score)
    if frontier:
        assert f"step {frontier[0].id} " in text  # the best of the active frontier is in view
    # the counts add up: drawn nodes + folded nodes = the whole tree
    shown = sum(1 for n in tree[1:] if f"step {n.id} " in text)
    import re
    folded = sum(int(m) for m in re.findall(r"… (\d+) more nodes", text))
    assert shown + folded == len(tree) - 1


def test_solve_prints_the_whole_tree_only_when_asked(tiny_model):
    from cli_helpers import FAST, tts
    args = ["solve", "What is 2 + 2?", "--policy", tiny_model, "--strategy", "majority", "--n", "3", *FAST]
    plain = tts(*args)
    assert plain.exit_code == 0 and "majority N=3" not in plain.stdout
    full = tts(*args, "--tree")
    assert full.exit_code == 0 and "majority N=3" in full.stdout and "result" in full.stdout
    js = tts(*args, "--json")
    import json
    assert len(json.loads(js.stdout)["tree"]) > 3


def _module_imports() -> dict[str, set[str]]:
    """tts_cli's modules -> the tts_cli modules they import (anywhere in the file, type-only
    imports included; importing a.b.c from outside package a.b also runs a.b's __init__)."""
    import ast
    root = REPO / "tts_cli"
    mods = {}
    for p in root.rglob("*.py"):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts)
        mods[name[:-9] if name.endswith(".__init__") else name] = p
    graph = {}
    for m, p in mods.items():
        package = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                deps.update(t for t in [target] + [f"{target}.{a.name}" for a in node.names] if t in mods)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
        for d in list(deps):
            parts = d.split(".")
            deps.update(".".join(parts[:i]) for i in range(2, len(parts))
                        if not m.startswith(".".join(parts[:i]) + ".") and m != ".".join(parts[:i]))
        graph[m] = deps - {m}
    return graph


def test_imports_run_one_way():
    graph = _module_imports()
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for d in graph.get(node, ()):
                if d == start:
                    cycles.append(" -> ".join(path + [start]))
                elif d not in seen:
                    seen.add(d)
                    stack.append((d, path + [d]))
    assert not cycles, cycles


def test_the_cli_only_parses_calls_and_renders():
    """The CLI stays thin: each module of tts_cli/cli/ is small and every command body short
    (commands parse flags, call the library, render; orchestration lives in the modules named
    after it)."""
    import ast
    for path in (REPO / "tts_cli" / "cli").glob("*.py"):
        src = path.read_text()
        assert len(src.splitlines()) < 300, path.name
        for node in ast.parse(src).body:
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # without the docstring
                assert not body or body[-1].end_lineno - body[0].lineno + 1 <= 40, (path.name, node.name)


def test_registry_says_which_downloads_were_checked():
    from cli_helpers import tts
    from tts_cli.registry import download_checked, load_registry
    reg = load_registry()
    for entry in reg.values():
        if entry.get("repo"):
            assert "verified" in entry, entry["name"]  # every download says what was checked
    assert reg["math-shepherd-mistral-7b-prm"]["repo"] == "QuantFactory/math-shepherd-mistral-7b-prm-GGUF"
    assert reg["llama3.1-8b-prm-deepseek-data"]["repo"] == "QuantFactory/Llama3.1-8B-PRM-Deepseek-Data-GGUF"
    # not seen from here: marked so, not presented as checked
    assert download_checked(reg["math-shepherd-mistral-7b-prm"]) == "unchecked"
    assert download_checked(reg["llama-3.2-1b-instruct"]) == "seen"
    assert download_checked(reg["skywork-o1-open-prm-qwen-2.5-1.5b"]) == "none"
    r = tts("models", "list")
    assert r.exit_code == 0 and "download" in r.stdout and "unchecked" in r.stdout
