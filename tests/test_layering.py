"""The package's import graph, read from the source: no cycles (function-level imports included), the
layering rules of ARCHITECTURE.md, and no function-level import of a distill module (those hid cycles)."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "distill"
STAGES = ("sampling", "verify", "filters", "train", "evaluate", "reinforce", "plan", "opd")
SHARED = ("distill.records", "distill.errors", "distill.config", "distill.text")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "shipped" not in p.parts}


def imports(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported distill module, line, inside a function) for every import statement of a file that runs
    (those under `if TYPE_CHECKING:` never do). Importing `distill.a.b` from outside the package `distill.a`
    first runs `distill.a` itself, so such an import also counts as one of that package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, nested) for alias in child.names if alias.name.startswith("distill"))
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("distill"):
                for alias in child.names:
                    target = f"{child.module}.{alias.name}"
                    found.append((target if target in known else child.module, child.lineno, nested))
            visit(child, inner)

    visit(tree, False)
    own = module_name(path)
    parents = [(".".join(t.split(".")[:i]), line, nested) for t, line, nested in found for i in range(2, t.count(".") + 1)]
    return found + [p for p in parents if p[0] in known and not (own + ".").startswith(p[0] + ".")]


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    mods = modules()
    known = set(mods)
    return {name: [(t, line, nested) for t, line, nested in imports(path, known) if t in known and t != name]
            for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in edges:
        if node not in index:
            connect(node)
    return found


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_the_import_graph_has_no_cycle() -> None:
    edges = {name: {t for t, _, _ in targets} for name, targets in graph().items()}
    assert cycles(edges) == []


def test_no_function_level_import_of_a_distill_module() -> None:
    nested = [f"{name}:{line} imports {target}" for name, targets in graph().items()
              for target, line, inside in targets if inside]
    assert nested == [], "function-level imports are for heavy third-party libraries only"


def test_layering_rules() -> None:
    broken = []
    for name, targets in graph().items():
        for target, line, _ in targets:
            where = f"{name}:{line} imports {target}"
            if stage(name) and target.startswith(("distill.cli", "distill.pipeline")):
                broken.append(f"{where} (a stage imports the CLI or the pipeline)")
            if stage(name) == "verify" and not (target.startswith("distill.verify") or target in SHARED):
                broken.append(f"{where} (verify imports only records, errors, config and the text helpers)")
            if stage(name) == "filters" and target.startswith("distill.sampling"):
                broken.append(f"{where} (filters never import the sampling engine)")
            if stage(name) == "train" and target.startswith("distill.evaluate"):
                broken.append(f"{where} (training never imports evaluation)")
            if name in SHARED and target not in SHARED:
                broken.append(f"{where} (a shared module imports only shared modules)")
    assert broken == []


def test_each_stage_package_imports_alone_in_a_fresh_interpreter() -> None:
    present = [s for s in STAGES if (PACKAGE / s).is_dir()]
    started = time.monotonic()
    for name in present + ["pipeline", "cli"]:
        result = subprocess.run([sys.executable, "-c", f"import distill.{name}"], capture_output=True, text=True,
                                timeout=60, cwd=PACKAGE.parent)
        assert result.returncode == 0, f"import distill.{name}: {result.stderr[-1500:]}"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("module", ["distill.cli", "distill.pipeline"])
def test_importing_the_command_line_loads_no_heavy_library(module: str) -> None:
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'datasets', 'trl', 'datasketch', "
            "'vllm') if m in sys.modules]; print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()} at start-up"
