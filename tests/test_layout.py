"""The engine's modules import one another without cycles, and results never depend on the report."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "robustbench_win"
# Modules that produce results, and the modules that read them for the report.
PRODUCERS = {"registry", "suite", "datasets", "checkpoints", "training", "runner", "store", "atomic", "ordering"}
REPORTING = {"tables", "markdown", "figures", "summary", "report"}


def runtime_imports(path: Path) -> set[str]:
    """robustbench_win modules ``path`` imports when it runs (not those for type checking only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and ast.unparse(block.test) == "TYPE_CHECKING" for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robustbench_win"):
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            found |= {n for n in names if (PACKAGE / f"{n}.py").is_file()}
    return found - {path.stem}


def graph() -> dict[str, set[str]]:
    return {p.stem: runtime_imports(p) for p in PACKAGE.glob("*.py")}


def test_no_import_cycle() -> None:
    try:
        order = list(TopologicalSorter(graph()).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {error.args[1]}") from None
    assert order.index("store") < order.index("report")


def test_nothing_that_produces_results_imports_the_report() -> None:
    for module, imported in graph().items():
        if module in PRODUCERS:
            assert not imported & REPORTING, (module, imported & REPORTING)
