"""The import graph of the `asteroid` package, computed from the source with `ast`: no cycle, and the domain
modules (`asteroid/*.py` but the pipeline controller) do not reach into the step layer; `global_config.py`
imports nothing of the package.

Every import statement counts as an edge, wherever it stands — at module level or inside a function. A
function-level import postpones a cycle to call time rather than removing it, and it is still a dependency
of the module: counting only module-level imports would let a cycle hide behind one lazy import (as
`monitoring/publish.py` did with `serving/deploy.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import global_config

PACKAGE = "asteroid"
PACKAGE_DIR = global_config.ROOT / PACKAGE
LAYERS = ("steps", "serving", "monitoring")
CONTROLLER = "pipeline"  # asteroid/pipeline.py: the step layer's controller, beside its steps


def module_name(path: Path) -> str:
    parts = list(path.relative_to(global_config.ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name an import statement of the file names (a `from x import y` names x and x.y)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (names that are not modules of the package are left out:
    third-party modules, and the hook folder's relative `from . import schema`, which resolves only there)."""
    modules = package_modules()
    return {
        module: {name for name in imported_names(path, module) if name in modules and name != module}
        for module, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that returns to its start, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def is_domain(module: str) -> bool:
    parts = module.split(".")
    return len(parts) == 2 and parts[1] not in (*LAYERS, CONTROLLER)


def test_the_graph_is_read_from_every_kind_of_import() -> None:
    graph = import_graph()
    assert "asteroid.serving.contract" in graph["asteroid.monitoring.reference"]  # module level, from-import
    assert "asteroid.serving.release" in graph["asteroid.steps.select_best"]  # inside a function
    assert "asteroid.schema" in graph["asteroid.serving.contract"]  # the checkout's side of a try/except


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_in_the_package() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_domain_modules_do_not_import_the_step_layer() -> None:
    offenders = {
        module: sorted(name for name in targets if name.startswith(f"{PACKAGE}.steps"))
        for module, targets in import_graph().items()
        if is_domain(module)
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_global_config_imports_nothing_of_the_package() -> None:
    names = imported_names(global_config.ROOT / "global_config.py", "global_config")
    assert not {name for name in names if name == PACKAGE or name.startswith(f"{PACKAGE}.")}
