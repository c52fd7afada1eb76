"""The package's import graph, imports inside functions included, has no cycle: data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import inceptune

PACKAGE = Path(inceptune.__file__).parent


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (functions included)."""
    modules = {}
    for file in PACKAGE.rglob("*.py"):
        parts = ("inceptune", *file.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (file, is_package)

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (file, is_package) in modules.items():
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = owner(target) if target.split(".")[0] == "inceptune" else None
                if found and found not in (name, "inceptune"):  # the top package only re-exports lazily
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]] and cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_imports_in_one_direction():
    graph = import_graph()
    assert "inceptune.workflows.train" in graph and "inceptune.cli" in graph
    assert "inceptune.training.two_phase" in graph["inceptune.workflows.cv"]  # imports inside functions count too
    assert cycles(graph) == []


def test_the_layers_do_not_reach_back_up_the_chain():
    graph = import_graph()
    lower = {"inceptune.data", "inceptune.features", "inceptune.models", "inceptune.evaluation"}
    for module, imported in graph.items():
        if any(module == p or module.startswith(p + ".") for p in lower):
            upward = [m for m in imported if m.startswith(("inceptune.training", "inceptune.deploy",
                                                           "inceptune.cli", "inceptune.inference.model"))]
            assert not upward, (module, upward)
    assert not [m for m in graph["inceptune.inference.model"] if m.startswith("inceptune.deploy")]


def test_every_module_imports():
    import importlib

    for name in sorted(import_graph()):
        if not name.endswith("__main__"):  # running it would start the command
            importlib.import_module(name)
