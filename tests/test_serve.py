"""tts serve: the real `openai` client against servers started here on free loopback ports.

Most servers run the tiny random-weight model (its answers are nonsense; what is checked is the
protocol, the scheduler sharing and the bookkeeping); one test runs SmolLM2. A search that must
still be in flight when a test acts runs on an "endless" tiny model, whose paths never end on
their own (see tiny_gguf), so nothing here depends on timing: waits are bounded polls of /health.
"""

import concurrent.futures
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import uvicorn

from cli_helpers import one_line_error, tts
from tiny_gguf import write_tiny_llama
from tts_cli.answers import extract_answer
from tts_cli.serve.app import create_app
from tts_cli.serve.server import open_service
from tts_cli.serve.settings import build_serve
from tts_cli.settings import build_run

QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]
TINY = {"threads": 1, "context_per_path": 512, "max_steps": 3, "max_step_tokens": 16}
# an endless path runs to its one step's 8192 tokens (seconds): in flight until cancelled
SLOW = {"threads": 1, "context_per_path": 8704, "max_steps": 1, "max_step_tokens": 8192, "strategy": "cot"}


@contextmanager
def running_server(model, serve: dict | None = None, **flags):
    """A tts serve app on uvicorn in a thread, on a free 127.0.0.1 port; yields (url, service)."""
    run = build_run(None, {"policy": str(model), **flags})
    service = open_service(run, build_serve(serve or {}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", service
    finally:
        service.stop()  # as a signal does (server._Server): searches cancelled, then uvicorn stops
        server.should_exit = True
        thread.join(60)
        sock.close()
    assert not thread.is_alive() and not service.worker.thread.is_alive()


def wait_for(condition, what: str, timeout: float = 60):
    """Poll until `condition()` holds (bounded: a broken server fails the test, never hangs it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"gave up waiting for {what}")


def client(url: str, key: str = "none", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120, **kw)


def call(url: str, path: str, body=None, headers=None, raw: bytes | None = None):
    """A plain HTTP request: (status, headers, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json",
                                                                      **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            status, head, text = r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        status, head, text = e.code, dict(e.headers), e.read().decode()
    try:
        return status, head, json.loads(text)
    except ValueError:
        return status, head, text


def health(url: str, **headers) -> dict:
    return call(url, "/health", headers=headers)[2]


def metric(url: str, name: str, labels: str = "") -> float:
    text = call(url, "/metrics")[2]
    m = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def idle(url: str) -> bool:
    h = health(url)
    return h["searches_in_flight"] == 0 and h["searches_queued"] == 0 and h["live_sequences"]["policy"] == 0


@pytest.fixture(scope="module")
def endless_model(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "endless.gguf", endless=True)


@pytest.fixture(scope="module")
def tiny_server(tiny_model):
    with running_server(tiny_model, {"concurrency": "4", "max_body_bytes": 8192}, prm="confidence",
                        strategy="majority", n=4, beam_width=2, **TINY) as (url, _):
        yield url


@pytest.fixture(scope="module")
def slow_server(endless_model):
    """One search at a time (cot holds one of its 3 slots, 2 stay for cached prompts); one may wait."""
    with running_server(endless_model, {"concurrency": "1", "queue_size": 1}, **SLOW) as (url, _):
        yield url


# --- answers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["cot", "majority", "best-of-n", "beam", "dvts"])
def test_a_chat_completion_with_each_strategy(tiny_server, strategy):
    options = {"strategy": strategy, "n": 4, **({"prm": "confidence"} if strategy == "best-of-n" else {})}
    r = client(tiny_server).chat.completions.create(model="tts", messages=QUESTION, extra_body={"tts": options})
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == "tts"
    (choice,) = r.choices
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    found = r.model_extra["tts"]
    assert found["config"]["strategy"] == strategy and found["config"]["n"] == 4
    policy = found["compute"]["policy"]
    assert r.usage.completion_tokens == policy["tokens_generated"] > 0 and found["compute"]["flops"] > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert len(found["candidates"]) >= 1 and "tree" not in found  # the tree only when asked for
    if found["answer"] is not None:  # the text returned is a path that reached the chosen answer
        assert extract_answer(choice.message.content).answer in found["votes"]
    if strategy in ("best-of-n", "beam", "dvts"):  # scored by the server's verifier
        assert found["verifier"] == "confidence" and all(c["step_scores"] for c in found["candidates"])


def test_n_choices_are_the_best_distinct_answers_and_the_tree_comes_when_asked(tiny_server):
    r = client(tiny_server).chat.completions.create(  # `budget` is n; tts-majority: majority at the server's n
        model="tts-majority", messages=QUESTION, n=3, seed=1, extra_body={"tts": {"tree": True, "budget": 8}})
    found = r.model_extra["tts"]
    answers = [extract_answer(c.message.content).answer for c in r.choices]
    assert len(found["votes"]) >= 3 and len(r.choices) == 3 and len(set(answers)) == 3
    assert answers[0] == found["answer"]  # the strategy's own choice first, then by votes
    counts = [found["votes"][a]["count"] for a in answers]
    assert counts == sorted(counts, reverse=True)
    assert found["config"]["n"] == 8 and len(found["tree"]) > 8


def test_a_stream_read_by_the_openai_client_gives_the_same_text_as_the_whole_answer(tiny_server):
    c = client(tiny_server)
    kw = dict(model="tts", messages=QUESTION, seed=5, extra_body={"tts": {"strategy": "beam", "n": 4}})
    whole = c.chat.completions.create(**kw)
    chunks = list(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    progress = [ch.model_extra["tts"]["progress"] for ch in chunks if "progress" in (ch.model_extra.get("tts") or {})]
    assert progress and all(ch.choices[0].delta.content is None for ch in chunks
                            if "progress" in (ch.model_extra.get("tts") or {}))
    assert {"step", "live_paths", "best_score", "nodes"} <= set(progress[0]) and progress[-1]["step"] >= 1
    assert any(n["score"] is not None for p in progress for n in p["nodes"])  # scored steps, as they came
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    last = next(ch for ch in chunks if ch.choices and ch.choices[0].finish_reason)
    assert last.choices[0].finish_reason == whole.choices[0].finish_reason
    assert last.model_extra["tts"]["answer"] == whole.model_extra["tts"]["answer"]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_route_and_model_names(tiny_server):
    c = client(tiny_server)
    names = [m.id for m in c.models.list().data]
    assert {"tts", "tiny", "tts-beam", "tts-beam-4", "tts-majority-16", "tts-cot"} <= set(names)
    r = c.completions.create(model="tts-beam-4", prompt="What is 2 + 3?")
    assert r.object == "text_completion" and r.model_extra["tts"]["strategy"] == "beam"
    assert r.model_extra["tts"]["config"]["n"] == 4 and isinstance(r.choices[0].text, str)
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(model="tts-beam-4", prompt="What is 2 + 3?",
                                                                        stream=True) if ch.choices)
    assert streamed == r.choices[0].text


def test_a_system_message_is_the_system_prompt_and_earlier_turns_are_not_the_problem(tiny_server):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"}, QUESTION[0]]
    r = client(tiny_server).chat.completions.create(model="tts", messages=messages)
    assert r.model_extra["tts"]["config"]["system_prompt"] == "Be brief."


# --- many clients, one scheduler ------------------------------------------------------------------

def test_eight_concurrent_clients_share_decodes(tiny_server):
    before = {k: metric(tiny_server, k) for k in ("tts_generation_decodes_total", "tts_generation_rows_total")}
    c = client(tiny_server)

    def ask(i):
        return c.chat.completions.create(model="tts-cot", messages=[{"role": "user", "content": f"What is {i} + 1?"}],
                                         extra_body={"tts": {"max_step_tokens": 32}})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert all(a.choices and a.model_extra["tts"]["strategy"] == "cot" for a in answers)
    decodes = metric(tiny_server, "tts_generation_decodes_total") - before["tts_generation_decodes_total"]
    rows = metric(tiny_server, "tts_generation_rows_total") - before["tts_generation_rows_total"]
    assert rows / decodes > 1  # one path each: more than one row per decode is several clients' searches
    assert metric(tiny_server, "tts_searches_peak") >= 2 and idle(tiny_server)
    text = call(tiny_server, "/metrics")[2]
    assert 'tts_tokens_total{model="policy",kind="generated"}' in text and "tts_request_duration_seconds_bucket" in text


def test_a_client_that_goes_away_has_its_search_cancelled_and_its_sequences_freed(slow_server):
    cancelled = metric(slow_server, "tts_searches_total", '{outcome="cancelled"}')
    stream = client(slow_server).chat.completions.create(model="tts", messages=QUESTION, stream=True)
    next(iter(stream))  # the role chunk: the search has been submitted
    wait_for(lambda: health(slow_server)["live_sequences"]["policy"] == 1, "the streamed search to start")
    stream.close()
    wait_for(lambda: idle(slow_server), "the streamed search to be cancelled")

    host, port = slow_server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)  # a plain request, not streamed
    conn.request("POST", "/v1/chat/completions", json.dumps({"model": "tts", "messages": QUESTION}),
                 {"Content-Type": "application/json"})
    wait_for(lambda: health(slow_server)["live_sequences"]["policy"] == 1, "the search to start")
    conn.close()  # hang up before the answer
    wait_for(lambda: idle(slow_server), "the search to be cancelled")
    assert metric(slow_server, "tts_searches_total", '{outcome="cancelled"}') == cancelled + 2


def test_a_full_queue_answers_429_with_retry_after(slow_server):
    c = client(slow_server)
    running = c.chat.completions.create(model="tts", messages=QUESTION, stream=True)
    next(iter(running))
    # started as the event loop sees it too (the search thread reports a start a moment later
    # than its scheduler counts it): until then the first request still holds the queue's place
    wait_for(lambda: (lambda h: h["searches_in_flight"] == 1 and h["searches_queued"] == 0)(health(slow_server)),
             "the first search to start")
    waiting = c.chat.completions.create(model="tts", messages=QUESTION, stream=True)
    next(iter(waiting))
    wait_for(lambda: health(slow_server)["searches_queued"] == 1, "the second search to wait")
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="tts", messages=QUESTION)
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.body["code"] == "rate_limit_exceeded" and e.value.body["type"] == "rate_limit_error"
    running.close()
    waiting.close()
    wait_for(lambda: idle(slow_server), "both searches to be cancelled")


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("tts_options, messages, param, words", [
    ({"beam_widht": 2}, QUESTION, "tts.beam_widht", "unknown option"),
    ({"n": 0}, QUESTION, "tts.n", "greater than or equal to 1"),
    ({"n": "four"}, QUESTION, "tts.n", "valid integer"),
    ({"strategy": "beam", "n": 6, "beam_width": 4}, QUESTION, "tts", "multiple of the beam width"),
    ({"prm": "judge"}, QUESTION, "tts.prm", "'confidence'"),
    ({"n": 65}, QUESTION, "tts.n", "--max-request-n"),
    ({"threads": 2}, QUESTION, "tts.threads", "server's setting"),
    ({}, [{"role": "system", "content": "Be brief."}], "messages", "no user message"),
])
def test_bad_requests_are_400s_naming_the_field(tiny_server, tts_options, messages, param, words):
    with pytest.raises(openai.BadRequestError) as e:
        client(tiny_server).chat.completions.create(model="tts", messages=messages, extra_body={"tts": tts_options})
    assert e.value.body["param"] == param and words in e.value.body["message"]
    assert e.value.body["type"] == "invalid_request_error"


def test_unknown_model_bad_json_and_a_large_body(tiny_server):
    with pytest.raises(openai.NotFoundError) as e:
        client(tiny_server).chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    status, _, body = call(tiny_server, "/v1/chat/completions", raw=b"{not json")
    assert status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    status, _, body = call(tiny_server, "/v1/chat/completions", {"model": "tts", "messages": "hi"})
    assert status == 400 and body["error"]["param"] == "messages"
    status, _, body = call(tiny_server, "/v1/chat/completions", raw=b" " * 9000)
    assert status == 413 and "--max-body-bytes" in body["error"]["message"]
    assert call(tiny_server, "/v2/nothing")[0] == 404


def test_a_key_is_required_on_every_route_when_the_server_has_one(tiny_model):
    with running_server(tiny_model, {"api_key": "sekret"}, strategy="cot", **TINY) as (url, _):
        with pytest.raises(openai.AuthenticationError):
            client(url, key="wrong").chat.completions.create(model="tts", messages=QUESTION)
        status, head, body = call(url, "/health")
        assert status == 401 and body["error"]["type"] == "authentication_error" and "Bearer" in head["www-authenticate"]
        assert call(url, "/metrics", headers={"Authorization": "Bearer sekret"})[0] == 200
        assert client(url, key="sekret").chat.completions.create(model="tts", messages=QUESTION).choices


def test_a_host_that_is_not_loopback_needs_a_key(tiny_model, monkeypatch):
    monkeypatch.delenv("TTS_API_KEY", raising=False)
    r = tts("serve", "--host", "0.0.0.0", "--policy", tiny_model)  # refused before anything is bound
    one_line_error(r, "--host 0.0.0.0", "--api-key")


def test_without_the_serve_extra_one_line_says_how_to_install_it(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "sse_starlette", None)
    one_line_error(tts("serve", "--policy", tiny_model), "pip install 'tts_cli[serve]'")


# --- tts solve --server, and the server's own process ----------------------------------------------

def test_solve_on_a_server_draws_the_tree_from_its_stream(tiny_server):
    from tts_cli.serve.client import remote_solver
    settings = build_run(None, {"strategy": "beam", "n": 4, "seed": 3})
    events = []
    result = remote_solver(tiny_server, {"strategy": "beam", "n": 4, "seed": 3})(settings, "What is 2 + 3?",
                                                                                 events.append)
    assert events and events[-1].tree[0].state == "root" and len(events[-1].tree) > 4
    assert {n.id for n in result.tree} >= {n.id for n in events[-1].tree}  # what was drawn is the search's
    r = tts("solve", "--server", tiny_server, "--strategy", "beam", "--n", 4, "--seed", 3, "--json", "What is 2 + 3?")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["answer"] == result.answer and json.loads(r.stdout)["tree"]
    one_line_error(tts("solve", "--server", tiny_server, "--threads", 2, "1+1?"), "--threads")
    one_line_error(tts("solve", "--server", "http://127.0.0.1:9", "1+1?"), "cannot reach")


def test_sigterm_cancels_the_searches_and_the_server_exits_143(endless_model):
    cmd = [sys.executable, "-m", "tts_cli", "serve", "--policy", str(endless_model), "--port", "0",
           *[x for k, v in SLOW.items() for x in (f"--{k.replace('_', '-')}", str(v))]]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = ""
        while "listening on" not in line and proc.poll() is None:
            line = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line).group(1)
        stream = client(url).chat.completions.create(model="tts", messages=QUESTION, stream=True)
        next(iter(stream))
        wait_for(lambda: health(url)["searches_in_flight"] == 1, "the search to start")
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(openai.APIError, match="shutting down"):
            list(stream)  # the stream ends with the error, at once: the search was cancelled
        assert proc.wait(timeout=60) == 143
        assert "stopped (SIGTERM)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# --- a real model -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_answers_a_question_through_the_server(smollm2):
    with running_server(smollm2, {"concurrency": "1"}, strategy="majority", n=2, prompt="few-shot", max_steps=3,
                        max_step_tokens=32, threads=1, context_per_path=1024) as (url, _):
        r = client(url).chat.completions.create(model="tts", messages=[{"role": "user", "content": "What is 15 + 27?"}])
        found = r.model_extra["tts"]
        assert found["answer"] is not None and found["strategy"] == "majority"
        assert extract_answer(r.choices[0].message.content).answer == found["answer"]
        assert idle(url)


def test_a_search_leaves_the_queue_when_the_worker_starts_it_not_a_loop_turn_later():
    # the queue's length (429s, /health) counts `left_queue`, set on the worker thread at once;
    # the `started` future is only set on the loop's next turn
    import asyncio

    from tts_cli.serve.worker import Ticket
    loop = asyncio.new_event_loop()
    try:
        ticket = Ticket(job=None, loop=loop)
        assert not ticket.left_queue
        ticket.resolve("started")
        assert ticket.left_queue and not ticket.started.done()
        loop.run_until_complete(asyncio.sleep(0))
        assert ticket.started.done()
    finally:
        loop.close()
