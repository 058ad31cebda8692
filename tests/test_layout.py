"""The package's layout shows its flow: no import cycle, and no stage imports a later one.

Modules are found from the tree (every ``.py`` file of ``robustbench_win/``, ``models/`` and
``attacks/``), so a new module is checked without being listed here; a new sub-package or
top-level module must be given its stage in :data:`STAGES`.
"""

from __future__ import annotations

import ast
import functools
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each installed package lives in the repository (see [tool.setuptools.package-dir]).
PACKAGE_DIRS = {
    "robustbench_win": ROOT / "robustbench_win",
    "robustbench_win.models": ROOT / "models",
    "robustbench_win.attacks": ROOT / "attacks",
}
# The stages in the order data flows. A module may import its own stage and earlier ones only.
# The suite is built out of the stages' own configuration types (TrainConfig, model and data
# set names), so it sits after `train` and before the stages that read its settings. The store
# declares the records that the runner writes and the analysis reads, so it comes before both.
STAGES: list[tuple[str, set[str]]] = [
    ("foundation", {"errors", "registry", "atomic", "ordering", "schema", "conventions", "models", "attacks"}),
    ("data", {"data"}),
    ("train", {"train"}),
    ("suite", {"suite", "suites"}),
    ("measure", {"measure"}),
    ("store", {"store"}),
    ("run", {"run"}),
    ("analysis", {"analysis"}),
    ("report", {"report"}),
    ("command line", {"cli", "__main__", "__init__"}),
]
# Stages that are later in the list but must still not import each other: analysing and
# reporting stored results never needs the code that produced them.
INDEPENDENT = {("analysis", "run"), ("report", "run")}


def module_name(path: Path) -> str:
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda item: -len(str(item[1]))):
        if path.is_relative_to(folder) and (package != "robustbench_win" or not any(
                path.is_relative_to(other) for name, other in PACKAGE_DIRS.items() if name != package)):
            parts = path.relative_to(folder).with_suffix("").parts
            return ".".join((package, *parts)).removesuffix(".__init__")
    raise AssertionError(f"{path} is in no package")


@functools.cache  # parsed once per session: one parametrized test per module reads it
def modules() -> dict[str, Path]:
    files = [p for folder in PACKAGE_DIRS.values() for p in folder.rglob("*.py")]
    return {module_name(p): p for p in files}


def imports(path: Path, known: set[str]) -> set[str]:
    """Modules of the project that ``path`` imports, type-checking imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robustbench_win"):
            for alias in node.names:  # `from pkg import module` names a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
    return found & known


@functools.cache
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def stage_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    for index, (_, members) in enumerate(STAGES):
        if key in members:
            return index
    raise AssertionError(f"{module} belongs to no stage: add {key!r} to STAGES in {__file__}")


def test_modules_are_found_from_the_tree() -> None:
    found = modules()
    assert {"robustbench_win.cli", "robustbench_win.models.windows", "robustbench_win.attacks.base",
            "robustbench_win.store.records", "robustbench_win.report.build"} <= set(found)
    assert len(found) > 40


def test_no_import_cycle() -> None:
    try:
        list(TopologicalSorter(graph()).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {error.args[1]}") from None


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_stage_imports_a_later_one(module: str) -> None:
    own = stage_of(module)
    for imported in graph()[module]:
        other = stage_of(imported)
        assert other <= own, f"{module} ({STAGES[own][0]}) imports {imported} of a later stage ({STAGES[other][0]})"
        assert (STAGES[own][0], STAGES[other][0]) not in INDEPENDENT, f"{module} imports {imported}"


def test_no_private_name_is_imported_across_modules() -> None:
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robustbench_win"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private {private} from {node.module}"
