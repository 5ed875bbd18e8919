"""Rendering a search for people: the live tree while it runs, and the final panel."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .search import Event, Node, SearchResult

MAX_PRUNED_SHOWN = 2


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
    t = Text()
    if node.score is not None:
        t.append(f"{node.score:.2f} ", style=f"bold {score_style(node.score)}")
    t.append(first or "(empty)", style="dim" if node.state == "pruned" else "")
    if node.state == "finished":
        t.append(f"  ✔ {node.answer}" if node.answer else f"  ✘ no answer ({node.reason})",
                 style="bold cyan" if node.answer else "magenta")
    elif node.state == "pruned":
        t.stylize("dim")
    return t


def render_tree(tree: list[Node], title: str, max_children: int = 16) -> Tree:
    children: dict[int, list[Node]] = {}
    for n in tree[1:]:
        children.setdefault(n.parent, []).append(n)
    root = Tree(Text(title, style="bold"))

    def add(branch: Tree, node_id: int) -> None:
        kids = children.get(node_id, [])
        pruned = [k for k in kids if k.state == "pruned"]
        shown = [k for k in kids if k.state != "pruned"][:max_children] + pruned[:MAX_PRUNED_SHOWN]
        for k in sorted(shown, key=lambda k: k.id):
            add(branch.add(node_label(k)), k.id)
        hidden = len(kids) - len(shown)
        if hidden > 0:
            branch.add(Text(f"… {hidden} more ({len(pruned)} pruned)", style="dim"))

    add(root, 0)
    return root


class LiveView:
    """An on_event handler that redraws a rich.live.Live with the tree so far."""

    def __init__(self, live, title: str):
        self.live = live
        self.title = title

    def __call__(self, event: Event) -> None:
        self.live.update(render_tree(event.tree, self.title), refresh=True)


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
