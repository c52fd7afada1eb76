"""The package's import graph, imports inside functions included, has no cycle and runs down the declared layers."""

from __future__ import annotations

import ast
from pathlib import Path

import inceptune

PACKAGE = Path(inceptune.__file__).parent
ARCHITECTURE = Path(__file__).parents[1] / "docs" / "architecture.md"
API = "__init__"  # the layer of inceptune/__init__.py


def package_modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> its file, and whether it is a package's __init__."""
    modules = {}
    for file in PACKAGE.rglob("*.py"):
        parts = ("inceptune", *file.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return modules


def imports(name: str, file: Path, is_package: bool) -> list[tuple[str, list[str]]]:
    """Every import statement of a module, functions included: (the module named, the names taken from it; none
    for `import a.b`), relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def _owner(modules: dict, name: str) -> str | None:  # the module a dotted name lives in
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source (functions included)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (file, is_package) in modules.items():
        for base, names in imports(name, file, is_package):
            for target in [base] + [f"{base}.{alias}" for alias in names]:
                found = _owner(modules, target) if target.split(".")[0] == "inceptune" else None
                if found and found not in (name, "inceptune"):  # the top package only re-exports lazily
                    graph[name].add(found)
    return graph


def layer_import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, functions included; `from inceptune import NAME` of a name
    that is no module imports `inceptune` itself (the API)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (file, is_package) in modules.items():
        for base, names in imports(name, file, is_package):
            targets = [f"{base}.{alias}" if f"{base}.{alias}" in modules else base for alias in names] or [base]
            for target in targets:
                if target.split(".")[0] == "inceptune":
                    graph[name].add(_owner(modules, target))
    return graph


def layer_of(module: str) -> str:
    """`inceptune.data.scan` -> `data`; `inceptune` itself -> the API's layer."""
    return module.split(".")[1] if "." in module else API


def declared_layers() -> list[str]:
    """The layers, lowest first: the first word of each line of the block under docs/architecture.md's
    "## Layers, lowest first"."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("\n## Layers, lowest first\n", 1)[1]
    block = section.split("```", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def upward_imports(graph: dict[str, set[str]], layers: list[str]) -> list[str]:
    """`module -> imported` for every import of a layer above the module's own."""
    rank = {layer: i for i, layer in enumerate(layers)}
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if rank[layer_of(target)] > rank[layer_of(module)])


def unplaced(graph: dict[str, set[str]], layers: list[str]) -> list[str]:
    """The package's top-level parts (packages, modules, the API) that no declared layer names."""
    return sorted({layer_of(module) for module in graph} - set(layers))


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


def test_the_layer_checker_flags_an_upward_import_and_an_unplaced_part():
    layers = ["errors", "data", "runs", API]
    graph = {"inceptune.errors": set(), "inceptune.data.scan": {"inceptune.errors", "inceptune.data.images"},
             "inceptune.data.images": set(), "inceptune.runs": {"inceptune.data.scan"}}
    assert upward_imports(graph, layers) == [] and unplaced(graph, layers) == []
    graph["inceptune.data.images"] = {"inceptune.runs"}  # inside a function or not: data reaches up to runs
    graph["inceptune.runs"].add("inceptune")  # `from inceptune import __version__`: the API, the top layer
    assert upward_imports(graph, layers) == ["inceptune.data.images -> inceptune.runs",
                                             "inceptune.runs -> inceptune"]
    assert unplaced({**graph, "inceptune.engines.ray_engine": set()}, layers) == ["engines"]


def test_the_packages_import_only_downwards():
    layers = declared_layers()
    assert len(layers) == len(set(layers)) and layers[0] == "errors" and API in layers
    graph = layer_import_graph()
    assert "inceptune.data.images" in graph["inceptune.data.scan"]  # the graph holds the package's imports
    assert "inceptune" in graph["inceptune.cli"]  # `import inceptune`: the API
    assert unplaced(graph, layers) == [], "place every package of src/inceptune in docs/architecture.md's layers"
    assert upward_imports(graph, layers) == []


def test_the_package_imports_in_one_direction():
    graph = import_graph()
    assert "inceptune.workflows.train" in graph and "inceptune.cli" in graph
    assert "inceptune.training.two_phase" in graph["inceptune.workflows.prepare"]  # imports inside functions count too
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


def test_rooms_stay_small():
    """Small modules with one job: none over 350 lines, and training/ holds the recipe alone (at most 15 files)."""
    long = {str(f.relative_to(PACKAGE)): n for f in PACKAGE.rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 350}
    assert long == {}, long
    assert len(list((PACKAGE / "training").glob("*.py"))) <= 15
