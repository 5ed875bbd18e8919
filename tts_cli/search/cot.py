"""Chain of thought: one greedy path."""

from __future__ import annotations

from .common import Search
from .types import SearchConfig


def cot(search: Search, config: SearchConfig):
    run = search.run("cot", config, use_verifier=False)  # nothing to choose: no verifier
    path = run.start(greedy=True)
    while True:
        node = (yield from run.step([path]))[0]
        if node.state == "finished":
            break
    run.finish([path])
    return run.result("single")
