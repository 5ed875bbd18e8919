"""What a streamed search reports while it runs, and how both ends keep its tree.

On the engine thread, a `ProgressFeed` is the search's on_event handler: it copies the nodes an
event changed (the tree keeps changing there) and hands them to the request's asyncio queue.
The stream merges what has arrived into a `TreeMirror` and sends one progress chunk: the new and
updated nodes with a summary (step, live paths, best score so far). `tts solve --server` feeds
those chunks into its own TreeMirror and draws it with live.py, as a local solve does.
"""

from __future__ import annotations

import asyncio

from ..search import Event, Node

_NODE_FIELDS = set(Node.__dataclass_fields__)


class ProgressFeed:
    """on_event handler (engine thread) -> items on an asyncio queue: {"event", "nodes",
    "reset"}. `reset` marks a new tree: auto's second stage grows one of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue = loop, queue
        self.tree: list | None = None

    def __call__(self, event: Event) -> None:
        reset = event.tree is not self.tree
        self.tree = event.tree
        item = {"event": event.kind, "nodes": [n.as_dict() for n in event.nodes], "reset": reset}
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: the server is stopping
            pass


class TreeMirror:
    """A search tree rebuilt from progress items (node dicts by id, later copies replacing
    earlier ones)."""

    def __init__(self):
        self.nodes: dict[int, dict] = {}

    def apply(self, item: dict) -> None:
        if item.get("reset"):
            self.nodes = {}
        for n in item.get("nodes", []):
            self.nodes[n["id"]] = n

    def summary(self) -> dict:
        """Step (the deepest node), live paths (active nodes without children), finished paths
        and the best step score so far."""
        parents = {n["parent"] for n in self.nodes.values()}
        live = sum(1 for i, n in self.nodes.items() if n["state"] == "active" and i not in parents)
        scores = [n["score"] for n in self.nodes.values() if n.get("score") is not None]
        return {"step": max((n["depth"] for n in self.nodes.values()), default=0), "live_paths": live,
                "finished_paths": sum(1 for n in self.nodes.values() if n["state"] == "finished"),
                "best_score": max(scores) if scores else None, "nodes_total": len(self.nodes)}

    def tree(self) -> list[Node]:
        """The tree as live.py draws it: the root, then the nodes by id (a node whose parent has
        not arrived hangs from the root)."""
        root = Node(id=0, parent=None, depth=0, step="", state="root")
        out = [root]
        for i in sorted(self.nodes):
            if i == 0:
                continue
            n = Node(**{k: v for k, v in self.nodes[i].items() if k in _NODE_FIELDS})
            if n.parent not in self.nodes and n.parent != 0:
                n.parent = 0
            out.append(n)
        return out


def merge(items: list[dict]) -> dict:
    """Progress items that arrived together as one: the nodes of all of them (the latest copy of
    each), from the last reset on."""
    start = max((i for i, item in enumerate(items) if item.get("reset")), default=0)
    nodes: dict[int, dict] = {}
    for item in items[start:]:
        for n in item["nodes"]:
            nodes[n["id"]] = n
    return {"events": sorted({item["event"] for item in items[start:]}), "reset": bool(items[start].get("reset")),
            "nodes": list(nodes.values())}
