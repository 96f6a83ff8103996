"""Small graph helpers over `needs` (step id -> the ids it needs)."""

from collections.abc import Mapping, Sequence


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as a list of ids in order, or None when the graph is acyclic."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node) :]
        if node in done:
            return None
        visiting.append(node)
        for need in graph.get(node, ()):
            cycle = visit(need)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in graph:
        cycle = visit(node)
        if cycle:
            return list(reversed(cycle))
    return None


def ancestors(graph: Mapping[str, Sequence[str]], node: str) -> set[str]:
    seen: set[str] = set()
    pending = list(graph.get(node, ()))
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(graph.get(current, ()))
    return seen


def topological_order(graph: Mapping[str, Sequence[str]], order: Sequence[str]) -> list[str]:
    """Ids with every step after its needs; ties keep the document's order (stable, readable)."""
    placed: list[str] = []
    remaining = list(order)
    while remaining:
        ready = next(node for node in remaining if set(graph.get(node, ())) <= set(placed))
        placed.append(ready)
        remaining.remove(ready)
    return placed
