"""Imports only go down: no module of the ``infersight`` package imports, directly or through
others, a module that imports it back, whether the import sits at module level or inside a
function. Read from the source with ``ast`` (nothing is imported to find the edges), over the
installed package's real module names (``integrations/`` is ``infersight.integrations``,
``processor/`` is ``infersight.processor``)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import infersight
import infersight.integrations as integrations
import infersight.processor as processor

# Cycles we accept, each as the sorted list of its modules, with the reason next to it. None today.
ALLOWED_CYCLES: list[list[str]] = []

# The layering of the global state (STYLE.md: "one home for state, and imports that only go
# down"): public API → state → runtime pieces. Each module here must not reach the ones listed.
MUST_NOT_REACH = {
    "infersight._state": ["infersight._api", "infersight", "infersight._monitor", "infersight.integrations.asgi"],
    "infersight._runtime": ["infersight._state", "infersight._api"],
    "infersight._spans": ["infersight._state", "infersight._api", "infersight._runtime"],
    "infersight.logs": ["infersight._state", "infersight._api", "infersight._runtime"],
    "infersight.config": ["infersight._state", "infersight._api", "infersight._runtime"],
}


def _modules() -> dict[str, Path]:
    """Every Python module of the package, by its import name, from where it is installed."""
    mods: dict[str, Path] = {}
    for pkg_dir in infersight.__path__:
        for path in Path(pkg_dir).rglob("*.py"):
            parts = list(path.relative_to(pkg_dir).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(["infersight", *parts])] = path
    for pkg in (integrations, processor):
        for pkg_dir in pkg.__path__:
            for path in Path(pkg_dir).glob("*.py"):
                stem = path.stem
                mods[pkg.__name__ if stem == "__init__" else f"{pkg.__name__}.{stem}"] = path
    return mods


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """``module → modules it imports`` within the package; ``from P import X`` points at the
    module ``P.X`` when X is one (a compiled extension such as ``_speedups`` is a leaf), else at P."""
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in mods or _is_module(full) else base)
            for target in targets:
                if target in mods and target != name:
                    edges[name].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_package_has_no_import_cycle() -> None:
    mods = _modules()
    # The walk must see the whole package, the mapped directories included.
    assert {
        "infersight._api",
        "infersight._state",
        "infersight.integrations.asgi",
        "infersight.processor.service",
    } <= set(mods)
    edges = _edges(mods)
    assert "infersight._state" in edges["infersight._api"]  # the walk finds real edges
    assert "infersight.stats.reference" in edges["infersight._monitor"]  # function-level ones too
    cycles = [c for c in _cycles(edges) if c not in ALLOWED_CYCLES]
    assert not cycles, "import cycles (a module reaches itself through these): " + "; ".join(
        " ↔ ".join(c) for c in cycles
    )


def test_global_state_is_imported_downwards_only() -> None:
    edges = _edges(_modules())
    for module, forbidden in MUST_NOT_REACH.items():
        reached = _reach(edges, module) & set(forbidden)
        assert not reached, f"{module} imports (directly or through others) {sorted(reached)}: imports only go down"
