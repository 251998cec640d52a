"""``python -m bench layering``: the import circles and upward imports inside ``dlopt_core``.

The imports are read from the source with ``ast`` (module-level and function-level alike: a lazy
import is still a dependency), so the count is what the code says, not what happens to load.
``tests/test_layering.py`` enforces the same rules.
"""

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: a module may import from its own floor or any floor below, never above.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("dlopt_core.errors", "dlopt_core.home", "dlopt_core.device", "dlopt_core.reference"),
    ("dlopt_core.uploads",),
    ("dlopt_core.catalog",),
    ("dlopt_core.config",),
    ("dlopt_core.engine",),
    ("dlopt_core.sharing",),
    ("dlopt_core.compression", "dlopt_core.runner", "dlopt_core.transfer", "dlopt_core.continual", "dlopt_core.stream"),
    ("dlopt_core.experiments",),
    ("dlopt_core.plots", "dlopt_core.cli", "dlopt_core.export", "dlopt_core.__main__"),
)

Graph = Mapping[str, set[str]]


def core_modules(root: Path = ROOT, package: str = "dlopt_core") -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its own name, not ``__init__``)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(modules: Mapping[str, Path], package: str = "dlopt_core") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports anywhere in its source."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, is_package)
                # ``from pkg import mod`` names a module; ``from pkg import thing`` names pkg.
                targets.update(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
                )
        graph[name] = {_known(t, modules) for t in targets if t.split(".")[0] == package} - {None, name}
    return graph


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(target: str, modules: Mapping[str, Path]) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def floor_of(module: str, floors: Iterable[Iterable[str]] = FLOORS) -> int:
    """The floor index of ``module`` (a KeyError names a module no floor holds)."""
    if "." not in module:  # the package itself: its __init__ imports nothing of its own
        return 0
    for index, prefixes in enumerate(floors):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise KeyError(f"{module} is on no floor: add it to FLOORS")


def upward_imports(graph: Graph, floors: Iterable[Iterable[str]] = FLOORS) -> list[tuple[str, str]]:
    """Every (importer, imported) pair where the imported module sits on a higher floor."""
    floors = tuple(tuple(f) for f in floors)
    return sorted(
        (a, b) for a, targets in graph.items() for b in targets if floor_of(b, floors) > floor_of(a, floors)
    )


def circles(graph: Graph) -> list[list[str]]:
    """The import circles: each strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    """Print the circles and upward imports; exit 1 when there are any."""
    graph = import_graph(core_modules())
    found_circles, upward = circles(graph), upward_imports(graph)
    print(f"dlopt_core: {len(graph)} modules, {sum(map(len, graph.values()))} imports")
    print(f"import circles: {len(found_circles)}")
    for group in found_circles:
        print("  " + " <-> ".join(group))
    print(f"upward imports: {len(upward)}")
    for a, b in upward:
        print(f"  {a} -> {b}")
    return 1 if found_circles or upward else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
