"""The backend is a generic ClearML backend: it imports nothing of the application around it (the project's
generic process supervisor aside)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "clearml_local"
PROJECT_ROOT = PACKAGE.parent
GENERIC = {"clearml_local", "process_supervisor"}  # the generic packages the backend may import


def imported_top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def project_modules() -> set[str]:
    """Top-level modules and packages of this checkout other than the backend."""
    found = {p.stem for p in PROJECT_ROOT.glob("*.py")}
    found |= {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")}
    return found - GENERIC


def test_backend_imports_nothing_of_the_project() -> None:
    forbidden = project_modules()
    assert {"asteroid", "global_config", "tests"} <= forbidden
    offenders = {
        str(path.relative_to(PROJECT_ROOT)): sorted(imported_top_level_names(path) & forbidden)
        for path in PACKAGE.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_backend_imports_only_the_standard_library_and_pinned_packages() -> None:
    pinned = {"clearml", "jsonschema", "jwt", "python_multipart", "re2", "requests"}
    allowed = set(sys.stdlib_module_names) | pinned | GENERIC
    used = set().union(*(imported_top_level_names(path) for path in PACKAGE.rglob("*.py")))
    assert used - allowed == set()
