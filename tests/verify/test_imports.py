"""`distill.verify` imports only `distill.records`, `distill.errors`, its own modules and other libraries,
and its modules import each other without a cycle (function-level and late imports count)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "distill" / "verify"
ALLOWED = {"distill.records", "distill.errors"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "distill.verify":
            # `from distill.verify import code` imports a submodule; any other name comes from __init__.
            found |= {f"distill.verify.{a.name}" if (PACKAGE / f"{a.name}.py").exists() else "distill.verify"
                      for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name == "distill" or name.startswith("distill.")}


def test_only_records_errors_and_its_own_modules() -> None:
    for path in PACKAGE.glob("*.py"):
        outside = {n for n in _imports(path) if n not in ALLOWED and not n.startswith("distill.verify")}
        assert not outside, (path.name, outside)


def test_no_import_cycle() -> None:
    graph = {}
    for path in PACKAGE.glob("*.py"):
        name = "distill.verify" if path.stem == "__init__" else f"distill.verify.{path.stem}"
        graph[name] = {n for n in _imports(path) if n.startswith("distill.verify") and n != name}
    # A submodule that imports the package runs the package's __init__, which imports the submodules.
    graph = {k: {n if n in graph else n.rsplit(".", 1)[0] for n in v} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for child in graph.get(node, ()):
            assert state.get(child) != 1, " -> ".join([*path, node, child])
            if child not in state:
                visit(child, [*path, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
