"""`--ray`: grading on a local Ray instance and on a real two-node cluster on this machine.

Everything stays on loopback: the cluster's nodes are 127.0.0.2 and 127.0.0.3 (never the
names Ray replaces with the network interface's address), and a local instance binds to
loopback only. The cluster is stopped by the process groups this module started, never with
`ray stop` (which ends every Ray process on the machine).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli_helpers import read_records, record_lines, write_jsonl
from tts_cli.cli_options import LOCAL, normalize_argv as normalize_ray_args

pytest.importorskip("ray", reason="the [ray] extra (CI installs it with [test])")

HEAD, NODE = "127.0.0.2", "127.0.0.3"


def problems(path: Path, n: int) -> Path:
    return write_jsonl(path, [{"question": f"What is {i} + 1?", "answer": f"x\n#### {i + 1}"} for i in range(n)])


def grade_cmd(data, out, model, *extra, step_tokens=8):
    return [sys.executable, "-m", "tts_cli", "grade", str(data), "--out", str(out), "--policy", str(model),
            "--strategy", "majority", "--n", "2", "--max-steps", "4", "--max-step-tokens", str(step_tokens),
            "--threads", "1", "--concurrency", "2", *map(str, extra)]


def run(cmd, env=None, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def records(path: Path) -> list[dict]:
    return read_records(path)


def assert_each_once(path: Path, n: int) -> list[dict]:
    recs = records(path)
    ids = [r["id"] for r in recs]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == n, ids
    return recs


def by_id(recs):
    return {r["id"]: (r["answer"], [c["answer"] for c in r["candidates"]]) for r in recs}


def test_bare_ray_flag_means_a_local_instance():
    assert normalize_ray_args(["grade", "d.jsonl", "--ray"]) == ["grade", "d.jsonl", "--ray", LOCAL]
    assert normalize_ray_args(["grade", "--ray", "--out", "x"]) == ["grade", "--ray", LOCAL, "--out", "x"]
    assert normalize_ray_args(["grade", "--ray", "d.jsonl"]) == ["grade", "--ray", LOCAL, "d.jsonl"]
    assert normalize_ray_args(["grade", "--ray", "10.0.0.1:6379"]) == ["grade", "--ray", "10.0.0.1:6379"]
    assert normalize_ray_args(["grade", "--ray", "auto"]) == ["grade", "--ray", "auto"]


def test_local_ray_gives_the_same_records_as_one_process(tiny_model, tmp_path):
    data = problems(tmp_path / "d.jsonl", 8)
    run(grade_cmd(data, tmp_path / "plain.jsonl", tiny_model))
    r = run(grade_cmd(data, tmp_path / "ray.jsonl", tiny_model, "--ray", "--workers", "2"))
    assert "2 workers on a local Ray instance (nodes 127.0.0.1)" in r.stderr
    plain = assert_each_once(tmp_path / "plain.jsonl", 8)
    ray = assert_each_once(tmp_path / "ray.jsonl", 8)
    assert by_id(ray) == by_id(plain)  # same seed, same answers and candidates
    assert all(r["compute"]["policy"]["tokens_generated"] > 0 for r in ray)
    # a rerun on the cluster skips what is there
    r = run(grade_cmd(data, tmp_path / "ray.jsonl", tiny_model, "--ray", "--workers", "2"))
    assert "already done: 8" in r.stdout.replace("\n", " ")
    assert_each_once(tmp_path / "ray.jsonl", 8)


def test_local_instance_listens_on_loopback_only(tmp_path):
    """What `--ray` starts accepts connections from this machine only, and no dashboard."""
    code = (
        "import json, os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from tts_cli.cluster import connect\n"
        "ray = connect('local', num_cpus=1)\n"
        "from test_cluster import listening_addresses  # it imports ray: after connect\n"
        "from ray._private.worker import global_worker\n"
        "node = global_worker.node\n"
        "pids = [os.getpid()] + [p.process.pid for procs in node.all_processes.values() for p in procs]\n"
        "print(json.dumps({'ip': node.node_ip_address, 'servers': len(pids),\n"
        "                  'listening': listening_addresses(pids)}))\n"
        "from tts_cli.cluster.connect import _abandon\n"
        "_abandon(ray, local=True)  # as RaySolver.close() does: no processes, no temp folder left\n"
    )
    r = run([sys.executable, "-c", code])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ip"] == "127.0.0.1"
    listening = out["listening"]
    assert len(listening) >= 3, out  # the GCS, the raylet, this driver's core worker at least
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip, _ in listening), listening


def listening_addresses(pids) -> list[tuple[str, int]]:
    """(ip, port) of the TCP sockets these processes listen on, read from /proc (Linux)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            hexip, port = f[1].split(":")
            raw = bytes.fromhex(hexip)
            if v6:
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                raw = b"".join(words)
                ip = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.append((ip, int(port, 16)))
    return out


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node on 127.0.0.2 and a second node on 127.0.0.3, one CPU each: yields
    (address, env, [process groups]); stopped by the process groups started here."""
    with ray_cluster(tmp_path_factory.mktemp("ray-logs")) as (address, env, started):
        yield address, env, started


@contextmanager
def ray_cluster(logs: Path, head_cpus: int = 1):
    """A two-node cluster on loopback (the head on HEAD with `head_cpus` CPUs, a node on NODE
    with one): yields (address, env, [head, node]: the `ray start` processes, each leading a
    session of its own); stopped by those sessions, whatever state they are left in."""
    port = free_port(HEAD)
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # `ray start --head` makes and uses a token
    started = []

    def start(args, name, cpus):
        # `ray start`, from this interpreter's Ray whatever is on PATH
        proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus",
                                 str(cpus), *args], env=env,
                                stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        started.append(proc)
        return proc

    try:
        start(["--head", "--node-ip-address", HEAD, "--port", str(port), "--include-dashboard=false"], "head",
              head_cpus)
        wait_for(lambda: can_connect(HEAD, port), 60, logs)
        start(["--address", f"{HEAD}:{port}", "--node-ip-address", NODE], "node", 1)
        address = f"{HEAD}:{port}"
        wait_for(lambda: nodes_alive(address, env) == 2, 60, logs)
        yield address, env, started
    finally:
        for proc in started:
            stop_group(proc)
        # what `ray stop` would remove: the head's session folder (the node's is the same one)
        for path in ray_sessions(started[0].pid) if started else []:
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
        current = ray_temp_root() / "ray_current_cluster"
        if current.is_file() and current.read_text().strip() == f"{HEAD}:{port}":
            current.unlink()


def ray_temp_root() -> Path:
    """Where Ray keeps its temp folders (as ray._common.utils.get_default_ray_temp_dir says)."""
    return Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp") / "ray"


def ray_sessions(pid: int) -> list[Path]:
    """The temp folders of the Ray session process `pid` started (named after it), and
    session_latest where it points to one, under Ray's temp root."""
    root = ray_temp_root()
    found = list(root.glob(f"session_*_{pid}"))
    latest = root / "session_latest"
    if latest.is_symlink() and os.readlink(latest).endswith(f"_{pid}"):
        found.append(latest)
    return found


def wait_for(check, seconds, logs):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"the Ray cluster did not come up; logs in {logs}:\n" +
                         "\n".join(p.read_text()[-1500:] for p in Path(logs).glob("*.log")))


def can_connect(host, port) -> bool:
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


def nodes_alive(address, env) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    try:
        return int(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def stop_group(proc):
    """SIGTERM the processes of the session `ray start` leads (Ray's servers and workers; the
    workers take process groups of their own), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        for pid in session_members(proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and session_members(proc.pid):
            time.sleep(0.2)
        if not session_members(proc.pid):
            break
    proc.wait(timeout=10)


def session_members(sid, prefix: str = "") -> list[int]:
    """Live processes in session `sid` (whose command line starts with `prefix`)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") if prefix else ""
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) == sid and cmd.startswith(prefix):
            out.append(int(pid))
    return out


def start_until_written(cmd, out: Path, lines: int, **popen) -> subprocess.Popen:
    """Start `cmd` and return once `out` holds `lines` records."""
    proc = subprocess.Popen(cmd, **popen)
    deadline = time.time() + 240
    while time.time() < deadline and record_lines(out) < lines:
        time.sleep(0.05)
    return proc


def worker_pids(started) -> list[int]:
    """The tts worker actors' processes, in the cluster this test started."""
    return [pid for p in started for pid in session_members(p.pid, "ray::Worker")]


def test_two_node_cluster_grades_and_survives_a_killed_worker(tiny_model, tmp_path, cluster):
    address, env, groups = cluster
    n = 24
    data = problems(tmp_path / "d.jsonl", n)
    out = tmp_path / "r.jsonl"
    cmd = grade_cmd(data, out, tiny_model, "--ray", address, step_tokens=48)
    proc = start_until_written(cmd, out, 2, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    pids = worker_pids(groups)
    assert len(pids) == 2, pids  # one worker per node
    os.kill(pids[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "2 workers on the Ray cluster (nodes 127.0.0.2, 127.0.0.3)" in stderr
    assert "died" in stderr  # the driver said so, and went on
    recs = assert_each_once(out, n)
    assert not any(r.get("error") for r in recs)
    # the same answers as one process on this machine
    run(grade_cmd(data, tmp_path / "plain.jsonl", tiny_model, step_tokens=48))
    assert by_id(recs) == by_id(records(tmp_path / "plain.jsonl"))


def test_driver_killed_then_rerun_resumes_on_the_cluster(tiny_model, tmp_path, cluster):
    address, env, _ = cluster
    n = 16
    data = problems(tmp_path / "d.jsonl", n)
    out = tmp_path / "r.jsonl"
    cmd = grade_cmd(data, out, tiny_model, "--ray", address, step_tokens=48)
    proc = start_until_written(cmd, out, 3, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    proc.kill()
    proc.wait()
    before = len(records(out))
    assert 3 <= before < n
    r = run([*cmd, "--workers", "1"], env=env)  # one worker: it asks for one node's CPU, not two
    assert f"already done: {before}" in r.stdout.replace("\n", " ")
    assert_each_once(out, n)


POISON_SCRIPT = '''
import os, sys
from pathlib import Path
from tts_cli.settings import build_run
from tts_cli.cluster import RaySolver, Worker
from tts_cli.datasets import read_problems
from tts_cli.grade import grade_runs
from tts_cli.results import ResultsFile

class DiesOnBoom(Worker):
    """A worker whose process dies whenever it is handed the problem that says boom."""
    def submit(self, unit, items):
        if any("boom" in problem.problem for _, _, _, problem in items):
            os._exit(1)
        super().submit(unit, items)

data, out, model = map(Path, sys.argv[1:4])
settings = build_run(None, {"policy": str(model), "strategy": "majority", "n": 2, "max_steps": 4,
                            "max_step_tokens": 8, "threads": 1})
plan = (settings.strategy, settings.search)
solver = RaySolver("local", settings.models, [plan], 2, workers=2, worker_class=DiesOnBoom, on_status=print)
try:
    problems, _ = read_problems(data)
    files = {"": ResultsFile(out, {"strategy": "majority"})}
    summary = grade_runs(problems, files, lambda pairs: solver.solve_many(pairs, lambda key: plan))[""]
finally:
    solver.close()
print("replacements left", solver.replacements_left)
'''


def test_a_problem_that_kills_workers_is_recorded_as_an_error_after_bounded_tries(tiny_model, tmp_path):
    rows = [{"question": f"What is {i} + 1?", "answer": f"x\n#### {i + 1}"} for i in range(6)]
    rows[2]["question"] = "boom: what is 2 + 1?"
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "r.jsonl"
    r = run([sys.executable, "-c", POISON_SCRIPT, data, out, tiny_model])
    # counted as messages, not lines: Ray's own warnings share stdout and one may end without a newline
    deaths = re.findall(r"worker w\S* on node \S+ died ", r.stdout)
    assert len(deaths) == 3, r.stdout  # MAX_TRIES workers lost to it, then no more
    recs = assert_each_once(out, 6)
    errors = {rec["id"]: rec["error"] for rec in recs if rec.get("error")}
    assert list(errors) == [recs_id(recs, "boom")], errors  # its neighbours were retried and finished
    assert "a worker died running this problem 3 times" in errors[recs_id(recs, "boom")]


def recs_id(recs, word):
    return next(r["id"] for r in recs if word in r["problem"])


def test_ctrl_c_stops_the_workers_and_keeps_what_finished(tiny_model, tmp_path):
    n = 16
    data = problems(tmp_path / "d.jsonl", n)
    out = tmp_path / "r.jsonl"
    cmd = grade_cmd(data, out, tiny_model, "--ray", "--workers", "2", step_tokens=48)
    proc = start_until_written(cmd, out, 2, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its Ray processes are in this session
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "rerun to resume" in " ".join(err.split())
    kept = assert_each_once(out, len(records(out)))
    assert 2 <= len(kept) < n
    deadline = time.time() + 30  # the local instance and its workers are gone
    while time.time() < deadline and session_members(proc.pid):
        time.sleep(0.2)
    assert session_members(proc.pid) == []
    run(grade_cmd(data, out, tiny_model, step_tokens=48))  # resumed without Ray
    assert_each_once(out, n)


def test_a_worker_that_cannot_load_the_model_names_its_node(tmp_path):
    data = problems(tmp_path / "d.jsonl", 2)
    r = subprocess.run(grade_cmd(data, tmp_path / "r.jsonl", "/nonexistent/model.gguf", "--ray"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: worker w1 on node 127.0.0.1: /nonexistent/model.gguf: model file does not exist"], r.stderr


def test_without_ray_installed_one_line_says_how_to_install(tmp_path):
    data = problems(tmp_path / "d.jsonl", 2)
    code = ("import sys; sys.modules['ray'] = None\n"  # as if the [ray] extra were not installed
            f"sys.argv = ['tts', 'grade', {str(data)!r}, '--out', {str(tmp_path / 'r.jsonl')!r}, '--ray']\n"
            "from tts_cli.cli import main; main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --ray needs Ray: pip install 'tts_cli[ray]'"


def test_an_address_where_nothing_answers_is_one_line_at_once(tmp_path):
    data = problems(tmp_path / "d.jsonl", 2)
    address = f"{HEAD}:{free_port(HEAD)}"  # nothing listens there
    r = subprocess.run(grade_cmd(data, tmp_path / "r.jsonl", "/nonexistent/model.gguf", "--ray", address),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"error: cannot connect to the Ray cluster at {address}: "
                                                 "Connection refused (is `ray start --head` running there?)")


def kill_session(proc):
    """SIGKILL every process of the session `proc` leads: a node that dies at once."""
    for pid in session_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ended(proc, timeout=120):
    """Wait (generously) for `proc` to end; (return code, stderr). One that does not is killed,
    and the test fails."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"still running after {timeout} s")
    return proc.returncode, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_a_dead_head_node_stops_the_run_with_one_line_and_keeps_what_finished(tiny_model, tmp_path):
    """The head node dies mid-run (its GCS with it), and so do the workers: the driver stops,
    saying why, instead of waiting for ever; what finished is kept, and a run without Ray does
    the rest."""
    n = 40
    data = problems(tmp_path / "d.jsonl", n)
    out = tmp_path / "r.jsonl"
    with ray_cluster(tmp_path) as (address, env, (head, node)):
        cmd = grade_cmd(data, out, tiny_model, "--ray", address, step_tokens=48)
        proc = start_until_written(cmd, out, 2, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env={**env, "TTS_RAY_NO_WORKER_SECONDS": "10"})
        kill_session(head)
        for pid in session_members(node.pid, "ray::Worker"):  # the other worker too, as in the report
            os.kill(pid, signal.SIGKILL)
        code, err = ended(proc)
    assert code == 2 and "Traceback" not in err, err[-3000:]
    errors = error_lines(err)
    assert len(errors) == 1 and errors[0].startswith(f"error: the Ray cluster's head node is gone: its GCS at "
                                                     f"{address} has not answered for "), err[-3000:]
    kept = assert_each_once(out, len(records(out)))
    assert 2 <= len(kept) < n
    run(grade_cmd(data, out, tiny_model, step_tokens=48))  # resumed without Ray
    assert_each_once(out, n)


def test_worker_nodes_gone_and_no_room_left_stops_the_run_with_one_line(tiny_model, tmp_path):
    """The node the worker ran on dies; its replacement waits for room that the head (no CPUs)
    never has: the run stops after TTS_RAY_NO_WORKER_SECONDS, keeping what finished."""
    n = 40
    data = problems(tmp_path / "d.jsonl", n)
    out = tmp_path / "r.jsonl"
    with ray_cluster(tmp_path, head_cpus=0) as (address, env, (head, node)):
        cmd = grade_cmd(data, out, tiny_model, "--ray", address, "--workers", "1", step_tokens=48)
        proc = start_until_written(cmd, out, 2, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env={**env, "TTS_RAY_NO_WORKER_SECONDS": "10"})
        kill_session(node)
        code, err = ended(proc)
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert error_lines(err) == ["error: no worker has run for 10 s and no replacement has found a node with room "
                                "(each needs 1 CPU); the finished problems are kept"], err[-3000:]
    kept = assert_each_once(out, len(records(out)))
    assert 2 <= len(kept) < n


@pytest.mark.parametrize("when", ["starting", "running"])
def test_sigterm_stops_like_ctrl_c_and_leaves_nothing_of_the_local_instance(tiny_model, tmp_path, when):
    """SIGTERM while the local instance starts, or while it runs searches: exit 143 with one line,
    finished records kept, and neither a process nor the temp folder of that Ray session left."""
    n = 16
    data = problems(tmp_path / "d.jsonl", n)
    out = tmp_path / "r.jsonl"
    cmd = grade_cmd(data, out, tiny_model, "--ray", "--workers", "2", step_tokens=48)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its Ray processes are in this session
    try:
        deadline = time.time() + 240
        # "starting": once ray.init has made its temp folder; "running": once records come
        while time.time() < deadline and proc.poll() is None and not (
                ray_sessions(proc.pid) and (when == "starting" or record_lines(out) >= 2)):
            time.sleep(0.05)
        assert ray_sessions(proc.pid), "the local instance made no temp folder"
        proc.send_signal(signal.SIGTERM)
        code, err = ended(proc)
        deadline = time.time() + 30  # the local instance and its workers are gone
        while time.time() < deadline and session_members(proc.pid):
            time.sleep(0.2)
        assert session_members(proc.pid) == []
    finally:
        for pid in session_members(proc.pid):  # nothing is left of a test that failed either
            os.kill(pid, signal.SIGKILL)
    assert code == 143, err[-3000:]
    text = " ".join(err.split())
    assert "Traceback" not in err and "SIGTERM received" not in err and not error_lines(err), err[-3000:]
    assert text.count("terminated:") == 1 and text.endswith("rerun to resume"), err[-3000:]
    kept = assert_each_once(out, len(records(out))) if out.exists() else []
    assert len(kept) < n and (when == "starting" or len(kept) >= 2)
    assert ray_sessions(proc.pid) == []


def test_a_start_up_question_to_a_silent_cluster_ends_in_one_line_not_a_hang():
    # ray.nodes() and ray.cluster_resources() have no time limit of their own; the driver bounds them
    import threading

    from tts_cli.cluster.connect import ClusterError
    from tts_cli.cluster.driver import within
    never = threading.Event()
    with pytest.raises(ClusterError, match="did not say the cluster's nodes within"):
        within(0.5, never.wait, "the cluster's nodes")
    assert within(5, lambda: [1, 2], "x") == [1, 2]
    with pytest.raises(ZeroDivisionError):
        within(5, lambda: 1 / 0, "x")
    never.set()
