"""Runs that fit the machine they are on: searches in flight and cells per path from the memory
free, a configuration that cannot fit refused with one line naming what to lower."""

import pytest

from cli_helpers import FAST, one_line_error, tts, write_jsonl
from tts_cli.search.capacity import GB, plan_memory
from tts_cli.search.types import ConfigError

CELL = 23040  # SmolLM2-135M's KV bytes per cell


def plan(free_gb, **kw):
    args = dict(per_search=4, budget=4, policy_cell=CELL, asked_searches=None, wanted_searches=8, context=None,
                default_context=2048)
    return plan_memory(free_gb * GB, **{**args, **kw})


def test_auto_concurrency_is_cut_to_the_memory_free():
    assert plan(100).searches == 8  # plenty: what fills a batch
    small = plan(1.0)  # 4 paths x 2048 cells x 23 KB = 0.19 GB per search
    assert 1 <= small.searches < 8 and small.context == 2048
    assert small.kv_bytes <= 1.0 * GB


def test_the_context_per_path_halves_when_one_search_does_not_fit():
    p = plan(0.8, per_search=16, budget=16)  # 18 x 2048 x 23 KB = 0.85 GB: too much; 1024 cells fit
    assert p.searches == 1 and p.context == 1024


def test_what_the_user_asked_is_kept_or_refused_never_changed():
    assert plan(100, asked_searches=3).searches == 3
    with pytest.raises(ConfigError, match=r"--concurrency 8 .* lower --concurrency \(\d+ fit\)"):
        plan(1.0, asked_searches=8)
    with pytest.raises(ConfigError, match="lower --n or --context-per-path"):
        plan(0.1, context=2048, per_search=64, budget=64)


def test_a_model_verifier_counts_and_the_message_says_so():
    alone = plan(2.0)
    judged = plan(2.0, verifier_cell=CELL)
    assert judged.searches < alone.searches
    with pytest.raises(ConfigError, match="verifier without a model"):
        plan(0.3, verifier_cell=CELL, per_search=16, budget=16)


def test_a_stated_memory_figure_sizes_the_run_and_is_printed(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 1 + 1?", "answer": "#### 2"}])
    r = tts("grade", data, "--out", tmp_path / "r.jsonl", "--policy", tiny_model, "--strategy", "majority",
            "--n", "4", "--memory", "0.5", *FAST)
    assert r.exit_code == 0, r.output
    assert "memory: 0.5 GB free" in r.stderr
    one_line_error(tts("grade", data, "--out", tmp_path / "s.jsonl", "--policy", tiny_model, "--strategy", "majority",
                       "--n", "64", "--context-per-path", "4096", "--memory", "0.01", *FAST),
                   "needs", "GB of KV cache", "lower --n")
