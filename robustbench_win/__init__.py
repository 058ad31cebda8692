"""robustbench-win: do windowed, larger convolution kernels make CNNs more accurate and robust?

The package face, for use from Python (the ``robustbench-win`` command wraps the same functions)::

    import robustbench_win as rbw

    suite = rbw.load_suite("quick", ["seeds=[0]", "kernel_sizes=[3,7]"])
    rbw.run_suite(suite, "reports/mine")          # train or load, attack, store per-sample records
    rbw.build_report("reports/mine")              # tables, figures and summary.md from the records
    rbw.compare(["reports/quick", "reports/mine"], "reports/compare-mine")
    rbw.windowize(net, window="hamming")          # the paper's change, applied to any model

    @rbw.register_model("my-cnn")                 # plug in a model (register_dataset, register_attack too)
    def my_cnn(*, in_channels, num_classes, kernel_size=3, window="none"): ...

Names are imported on first use, not at ``import robustbench_win``: importing the package
loads no torch, and any sub-module (``robustbench_win.registry``) can be imported alone.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing (a third of the import time of this module);
# type checkers read this idiom as typing's own.
TYPE_CHECKING = False

__version__ = "0.1.0"

# Public name -> (module, attribute): resolved by __getattr__ on first access, then cached.
_EXPORTS: dict[str, tuple[str, str]] = {
    "load_suite": ("robustbench_win.suite", "load_suite"),
    "SuiteConfig": ("robustbench_win.suite", "SuiteConfig"),
    "SuiteError": ("robustbench_win.suite", "SuiteError"),
    "run_suite": ("robustbench_win.run.runner", "run_suite"),
    "build_report": ("robustbench_win.report.build", "build_report"),
    "windowize": ("robustbench_win.models.windowize", "windowize"),
    "WindowedConv2d": ("robustbench_win.models.windowed_conv", "WindowedConv2d"),
    "MODELS": ("robustbench_win.registry", "MODELS"),
    "DATASETS": ("robustbench_win.registry", "DATASETS"),
    "ATTACKS": ("robustbench_win.registry", "ATTACKS"),
    "register_model": ("robustbench_win.registry", "register_model"),
    "register_dataset": ("robustbench_win.registry", "register_dataset"),
    "register_attack": ("robustbench_win.registry", "register_attack"),
    "load_plugin": ("robustbench_win.registry", "load_plugin"),
}

__all__ = ["compare", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports these on first use
    from pathlib import Path
    from typing import Any

    from robustbench_win.models.windowed_conv import WindowedConv2d
    from robustbench_win.models.windowize import windowize
    from robustbench_win.registry import (
        ATTACKS, DATASETS, MODELS, load_plugin, register_attack, register_dataset, register_model,
    )
    from robustbench_win.report.build import build_report
    from robustbench_win.run.runner import run_suite
    from robustbench_win.suite import SuiteConfig, SuiteError, load_suite


def compare(run_folders: list[str | Path], out: str | Path) -> list[Path]:
    """One answer across runs: every run's verdict rows, each claim pooled, a forest plot.

    The function behind ``robustbench-win compare DIR DIR ... --out OUT``.

    Args:
        run_folders: Run folders or committed reports (each holds its stored records).
        out: Folder for ``compare.md``, ``compare_runs.csv``, ``compare_pooled.csv`` and
            ``figures/forest.png``.

    Returns:
        The files written (``compare.md`` last).

    Raises:
        CompareError: The runs cannot be compared (the message says why).
        ResultsNotFoundError: A folder holds no stored results.
    """
    from pathlib import Path

    from robustbench_win.report.compare import write_comparison

    return write_comparison([Path(folder) for folder in run_folders], Path(out))


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robustbench_win' has no attribute '{name}'")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS} - {"TYPE_CHECKING", "annotations", "importlib"})
