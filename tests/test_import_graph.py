"""The package's imports flow one way: no cycle (the HTTP boundary: test_http_boundary.py).

Read from the source with ``ast``: every import, also one inside a function (a
lazy import still ties the modules together), except those under
``if TYPE_CHECKING:``, which exist for annotations only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_dynpool

PACKAGE = Path(pytest_dynpool.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str) -> set[str]:
    """The package modules that ``module`` imports at run time."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        module: {target for target in _imports(path, module) if target in paths} - {module}
        for module, path in paths.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def _is_package_import(graph: dict[str, set[str]], module: str, target: str) -> bool:
    # "from . import x" names both the package and its submodule: the package
    # __init__ imports nothing of its own subpackages' users, so keep only the submodule.
    return not any(other.startswith(target + ".") for other in graph[module])


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    for module, targets in graph.items():
        graph[module] = {t for t in targets if _is_package_import(graph, module, t)}
    assert _cycle(graph) is None


def test_the_checks_see_imports() -> None:
    """The graph is not empty by accident: known edges are found, TYPE_CHECKING ones not."""
    graph = _graph()
    assert "pytest_dynpool.runtime.workers" in graph["pytest_dynpool.runtime.coordinator"]
    assert "pytest_dynpool.runtime.executor" in graph["pytest_dynpool.plugin"]  # lazy
    # the executor hands the pooled phase to the coordinator, which only names its type
    assert "pytest_dynpool.runtime.coordinator" in graph["pytest_dynpool.runtime.executor"]
    assert "pytest_dynpool.runtime.executor" not in graph["pytest_dynpool.runtime.coordinator"]
    assert "pytest_dynpool.runtime.setup_tree" not in graph["pytest_dynpool.pytest_compat"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
