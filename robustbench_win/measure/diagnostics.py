"""Per-model diagnostics the runner stores next to the attacks: spectral leakage and shift consistency.

Diagnostics describe a model (they have tables of their own, and leakage is a claim of the paper);
they are not the sanity checks of :mod:`robustbench_win.measure.checks`, which decide whether a
model's robustness numbers can be trusted (:mod:`robustbench_win.analysis.flags` applies those
outcomes to the report).

Each function takes one trained model and returns plain records (one mapping per row) in the
schemas of :mod:`robustbench_win.store.records` (:data:`~robustbench_win.store.records.LEAKAGE_RECORDS`,
:data:`~robustbench_win.store.records.KERNEL_RECORDS`, :data:`~robustbench_win.store.records.SHIFT_RECORDS`,
:data:`~robustbench_win.store.records.SHIFT_ACCURACY_RECORDS`), without the model identity, which the
run folder adds. The measures themselves live in :mod:`robustbench_win.measure.leakage` and
:mod:`robustbench_win.measure.shift_consistency`; this module only turns them into rows, so that a
report is rebuilt from stored rows alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from robustbench_win.measure.leakage import N_FFT, effective_kernels, layer_leakage, strongest_slices
from robustbench_win.measure.shift_consistency import shift_accuracy_table, shift_consistency

LEAKAGE_MEASURE = "spectral"  # step name of the leakage and kernel records
# Step name of the leakage records of the untrained model of the same seed (its initial weights).
LEAKAGE_INIT_MEASURE = "spectral-init"
SHIFT_MEASURE = "consistency"  # step name of the per-image shift records
SHIFT_GRID_MEASURE = "grid"  # step name of the per-shift accuracy records
SHIFT_SEED = 4321  # fixed: every model of every run sees the same two shifts of each image
EXAMPLE_SLICES = 4  # strongest kernel slices stored per model for the kernel figure


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic step: what it is called in timings and failures, and its stored steps.

    Attributes:
        name: Name in ``timings.json`` and in the failures table.
        kinds: ``(record kind name, step)`` of every file the step writes.
        trained: Whether it measures the trained model; ``False``: the untrained model of the
            same seed, which needs neither training nor a checkpoint.
    """

    name: str
    kinds: tuple[tuple[str, str], ...]
    trained: bool = True


LEAKAGE_DIAGNOSTIC = Diagnostic("leakage", (("leakage", LEAKAGE_MEASURE), ("kernels", LEAKAGE_MEASURE)))
LEAKAGE_INIT_DIAGNOSTIC = Diagnostic("leakage-init", (("leakage", LEAKAGE_INIT_MEASURE),), trained=False)
SHIFT_DIAGNOSTIC = Diagnostic("shift", (("shift", SHIFT_MEASURE), ("shift_accuracy", SHIFT_GRID_MEASURE)))
DIAGNOSTICS: tuple[Diagnostic, ...] = (LEAKAGE_INIT_DIAGNOSTIC, LEAKAGE_DIAGNOSTIC, SHIFT_DIAGNOSTIC)


def leakage_rows(model: nn.Module, *, n_fft: int = N_FFT) -> list[dict[str, Any]]:
    """One row per conv layer: :func:`robustbench_win.measure.leakage.layer_leakage`, the layer's own
    kernel size and window as ``layer_kernel_size`` and ``layer_window``.

    Stored twice per model: on the trained model (step :data:`LEAKAGE_MEASURE`) and on the
    untrained model of the same seed (step :data:`LEAKAGE_INIT_MEASURE`, the null the trained
    layers are read against).
    """
    rows = []
    for summary in layer_leakage(model, n_fft=n_fft):
        row = asdict(summary)
        row["layer_kernel_size"], row["layer_window"] = row.pop("kernel_size"), row.pop("window")
        rows.append(row)
    return rows


def kernel_example_rows(model: nn.Module, *, count: int = EXAMPLE_SLICES) -> list[dict[str, Any]]:
    """The ``count`` strongest effective kernel slices of the model's last measured conv layer, one row per tap.

    The last layer is a block layer of the model's own kernel size in the paper CNN and the
    ResNet (the stem keeps its 7 x 7).
    """
    layers = effective_kernels(model)
    if not layers:
        return []
    layer = layers[-1]
    rows = []
    for rank, slice_index in enumerate(strongest_slices(layer.kernels, count).tolist()):
        kernel = layer.kernels[slice_index].cpu()
        rows += [{"layer": layer.layer, "layer_index": layer.layer_index, "slice": rank, "row": r, "col": c,
                  "weight": float(kernel[r, c])}
                 for r in range(kernel.shape[0]) for c in range(kernel.shape[1])]
    return rows


def shift_rows(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
               indices: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-image records under two random shifts and per-shift accuracies (seed :data:`SHIFT_SEED`).

    Returns:
        ``(samples, accuracies)``: rows of :data:`~robustbench_win.measure.shift_consistency.SAMPLE_COLUMNS`
        and of :data:`~robustbench_win.measure.shift_consistency.SHIFT_ACCURACY_COLUMNS`.
    """
    result = shift_consistency(model, images, labels, indices, seed=SHIFT_SEED)
    return result.samples.to_dict("records"), shift_accuracy_table(result.grid).to_dict("records")
