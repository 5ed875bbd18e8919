"""Rendering a search for people: the live tree while it runs, and the final panel."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .search import Event, Node, SearchResult

def score_style(score: float | None) -> str:
    if score is None:
        return "white"
    if score >= 0.7:
        return "green"
    if score >= 0.4:
        return "yellow"
    return "red"


def node_label(node: Node, width: int = 60) -> Text:
    first = node.step.strip().replace("\n", " ")
    first = first[:width] + ("…" if len(first) > width else "")
    t = Text(no_wrap=True, overflow="ellipsis")  # one line per node: the tree's height is its node count
    if node.score is not None:
        t.append(f"{node.score:.2f} ", style=f"bold {score_style(node.score)}")
    t.append(first or "(empty)", style="dim" if node.state == "pruned" else "")
    if node.state == "finished":
        t.append(f"  ✔ {node.answer}" if node.answer else f"  ✘ no answer ({node.reason})",
                 style="bold cyan" if node.answer else "magenta")
    elif node.state == "pruned":
        t.stylize("dim")
    return t


def render_tree(tree: list[Node], title: str, max_lines: int | None = None, width: int = 100) -> Tree:
    """The search tree in at most `max_lines` lines (None: all of it). What a watcher needs
    stays: the active frontier (best scores first) and the best finished paths, each with its
    ancestors; the rest folds into one line per parent ("… 37 more nodes, 12 pruned")."""
    children: dict[int, list[Node]] = {}
    for n in tree[1:]:
        children.setdefault(n.parent, []).append(n)
    keep = {n.id for n in tree} if max_lines is None else _nodes_that_fit(tree, children, max_lines)
    root = Tree(Text(title, style="bold", no_wrap=True, overflow="ellipsis"))
    if keep == {0} and len(tree) > 1:  # not one whole path fits: the most promising nodes, flat
        return _flat(root, tree, children, max(1, (max_lines or 2) - 2), width)

    def add(branch: Tree, node_id: int, depth: int) -> None:
        kids = children.get(node_id, [])
        for k in kids:
            if k.id in keep:
                add(branch.add(node_label(k, max(10, width - 4 * depth - 24))), k.id, depth + 1)
        hidden = [k for k in kids if k.id not in keep]
        if hidden:
            nodes = [d for k in hidden for d in _subtree(k, children)]
            pruned = sum(d.state == "pruned" for d in nodes)
            branch.add(Text(f"… {len(nodes)} more nodes, {pruned} pruned", style="dim", no_wrap=True))

    add(root, 0, 1)
    return root


def _best(tree: list[Node], children: dict) -> list[Node]:
    """The active frontier (best score first), then the finished nodes (best first)."""
    best_first = lambda n: -(n.score if n.score is not None else -1.0)  # noqa: E731
    frontier = sorted((n for n in tree[1:] if n.state == "active" and n.id not in children), key=best_first)
    return frontier + sorted((n for n in tree[1:] if n.state == "finished"), key=best_first)


def _flat(root: Tree, tree: list[Node], children: dict, room: int, width: int) -> Tree:
    shown = _best(tree, children)[:room]
    for n in shown:
        label = Text(f"[step {n.depth}] ", style="dim", no_wrap=True, overflow="ellipsis")
        root.add(label.append_text(node_label(n, max(10, width - 36))))
    ids = {n.id for n in shown}
    rest = [n for n in tree[1:] if n.id not in ids]
    root.add(Text(f"… {len(rest)} more nodes, {sum(n.state == 'pruned' for n in rest)} pruned", style="dim",
                  no_wrap=True))
    return root


def _subtree(node: Node, children: dict) -> list[Node]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(children.get(n.id, []))
    return out


def _nodes_that_fit(tree: list[Node], children: dict, max_lines: int) -> set[int]:
    """Node ids to draw: paths to the frontier and to the best finished nodes, most promising
    first, while the drawing (title, nodes, one fold line per parent with hidden children)
    fits in max_lines."""
    by_id = {n.id: n for n in tree}
    keep = {0}

    def lines(ids: set[int]) -> int:
        folds = sum(1 for i in ids if any(k.id not in ids for k in children.get(i, [])))
        return len(ids) + folds  # the root's line is the title

    for node in _best(tree, children):
        chain, n = set(), node
        while n.id not in keep:
            chain.add(n.id)
            n = by_id[n.parent]
        if chain and lines(keep | chain) <= max_lines:
            keep |= chain
    return keep


class LiveView:
    """An on_event handler that redraws a rich.live.Live with the tree so far, cut to fit the
    terminal whatever its size."""

    def __init__(self, live, title: str):
        self.live = live
        self.title = title

    def __call__(self, event: Event) -> None:
        size = self.live.console.size
        self.live.update(render_tree(event.tree, self.title, max_lines=max(2, size.height - 1), width=size.width),
                         refresh=True)


def result_panel(result: SearchResult, reference: str | None = None) -> Panel:
    table = Table(show_header=True, header_style="bold", expand=False)
    table.add_column("answer")
    table.add_column("votes", justify="right")
    table.add_column("summed score", justify="right")
    for answer, v in sorted(result.votes.items(), key=lambda kv: (-kv[1]["score"], -kv[1]["count"])):
        mark = " ◀" if answer == result.answer else ""
        table.add_row(answer + mark, str(v["count"]), f"{v['score']:.2f}" if v["score"] else "-")
    c = result.compute
    lines = [Text.assemble(("answer: ", "bold"), (str(result.answer), "bold green" if result.answer else "red"))]
    if reference is not None:
        lines.append(Text(f"reference: {reference}"))
    lines.append(Text(f"strategy: {result.strategy}   verifier: {result.verifier or '-'}   "
                      f"paths finished: {len(result.candidates)}"))
    compute = [f"policy: {c['policy'].get('tokens_prefilled', 0)} prefilled, "
               f"{c['policy'].get('tokens_generated', 0)} generated"]
    if "verifier" in c:
        compute.append(f"verifier: {c['verifier'].get('tokens_evaluated', 0)} evaluated")
    compute.append(f"{c['flops']:.3g} FLOPs, {c['seconds']:.1f} s")
    lines.append(Text("; ".join(compute), style="dim"))
    if result.auto:
        a = result.auto
        lines.append(Text(f"auto: predicted {a['difficulty']} (pass@1 ≈ {a['pass_at_1_estimate']:.0%} from "
                          f"{a['probe_paths']} probe paths) → {a['chosen']} {a['settings']}; {a['reason']}",
                          style="cyan"))
    for note in result.notes:
        lines.append(Text(note, style="yellow"))
    return Panel(Group(*lines, table), title="result", expand=False)
