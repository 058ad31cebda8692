"""Shift consistency and accuracy under single shifts (DESIGN.md, "Shift consistency").

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019: a shift-invariant
classifier predicts the same class for an image however it is shifted. Two measures:

- **Consistency**: each test image is shifted by two different random integer shifts ``a`` and
  ``b``, each with ``1 <= max(|dx|, |dy|) <= max_shift`` pixels; the image is consistent when
  the predicted classes agree (whether or not they are right). The shifts of an image are
  drawn from a generator seeded with ``(seed, index)``, so every model sees the same shifts of
  the same image (paired across models) whatever the batch or the subset it is evaluated in.
- **Accuracy under each single shift** ``(dx, dy)`` of the grid ``-max_shift..max_shift`` in
  both directions (identity included).

Shifts use the spatial attack's warp (:func:`robustbench_win.attacks.spatial.warp`): ``dx``
pixels right, ``dy`` pixels down, zeros shifted in. Integer shifts move pixels exactly.
Unlike the spatial attack, every image counts, not only the correctly classified ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

# check_inputs validates exactly what an attack's __call__ does; shared so the messages agree.
from robustbench_win.attacks.base import (
    channels_last_weights, check_inputs, check_positive_int, frozen, full_fp32, model_device, predict,
)
from robustbench_win.attacks.spatial import warp
from robustbench_win.measure.base import Measure, MeasureInput, Rows, measure_records
from robustbench_win.schema import Schema

MAX_SHIFT = 3  # pixels, the spatial attack's translation range
_STREAM = 0x5111F7  # third seed word: these draws never coincide with another per-sample stream



@dataclass(frozen=True)
class ShiftSample:
    """One image under two random shifts: the stored per-sample shift record (columns and types).

    Attributes:
        index: Position of the image in the test split.
        label: Its true class.
        dx_a: First shift, pixels right.
        dy_a: First shift, pixels down.
        dx_b: Second shift, pixels right.
        dy_b: Second shift, pixels down.
        pred_a: Predicted class under the first shift.
        pred_b: Predicted class under the second shift.
        consistent: Whether the two predictions agree.
    """

    index: int
    label: int
    dx_a: int
    dy_a: int
    dx_b: int
    dy_b: int
    pred_a: int
    pred_b: int
    consistent: bool


@dataclass(frozen=True)
class ShiftAccuracy:
    """Accuracy under one grid shift ``(dx, dy)``: the stored per-model record (columns and types).

    Attributes:
        dx: Pixels right.
        dy: Pixels down.
        n_samples: Images evaluated.
        n_correct: Of those, classified correctly.
        accuracy: ``100 n_correct / n_samples``, percent.
    """

    dx: int
    dy: int
    n_samples: int
    n_correct: int
    accuracy: float


SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ShiftSample))
GRID_COLUMNS: tuple[str, ...] = ("index", "label", "dx", "dy", "pred", "correct")
SHIFT_ACCURACY_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ShiftAccuracy))


@dataclass(frozen=True)
class ShiftConsistency:
    """Per-sample results of :func:`shift_consistency`.

    Attributes:
        samples: One row per image, columns :data:`SAMPLE_COLUMNS`: data set index, label, the
            two shifts, the predictions under each and whether they agree.
        grid: One row per image and grid shift, columns :data:`GRID_COLUMNS`.
    """

    samples: pd.DataFrame
    grid: pd.DataFrame

    @property
    def consistency(self) -> float:
        """Percentage of images predicted the same under both shifts (:func:`consistency`)."""
        return consistency(self.samples)


def shift_consistency(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    indices: Sequence[int] | None = None,
    *,
    seed: int,
    max_shift: int = MAX_SHIFT,
    batch_size: int = 256,
) -> ShiftConsistency:
    """Predictions of ``model`` under two random shifts per image and under every grid shift.

    Args:
        model: Maps ``(N, C, H, W)`` pixels in [0, 1] to logits; evaluated in eval mode and left
            as it was found.
        images: ``(N, C, H, W)`` pixels in [0, 1].
        labels: ``(N,)`` integer labels.
        indices: Data set positions of the images (default ``range(N)``): they seed the shifts.
        seed: Non-negative integer seed of the random shifts.
        max_shift: Largest shift along x and along y, whole pixels.
        batch_size: Images per forward pass.

    Returns:
        :class:`ShiftConsistency` records, images in input order.

    Raises:
        ValueError: Bad inputs, ``seed`` or ``max_shift``.
    """
    indices = check_inputs(images, labels, indices, batch_size)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_positive_int("max_shift", max_shift)
    device = model_device(model)
    x = images.detach().to(device=device, dtype=torch.float32)
    pairs = torch.tensor([random_shift_pair(seed, index, max_shift) for index in indices], dtype=torch.float64)
    pairs = pairs.view(len(indices), 2, 2)  # (N, shift a or b, dx or dy)
    # Channels-last weights, as the attacks run the model: oneDNN's large kernels are faster so.
    with frozen(model), full_fp32(device), channels_last_weights(model):
        pred_a = predict_shifted(model, x, pairs[:, 0], batch_size)
        pred_b = predict_shifted(model, x, pairs[:, 1], batch_size)
        grid = [(shift, predict_shifted(model, x, torch.tensor([shift], dtype=torch.float64), batch_size))
                for shift in grid_shifts(max_shift)]
    label_list = labels.tolist()
    samples = pd.DataFrame({
        "index": indices, "label": label_list,
        "dx_a": pairs[:, 0, 0].long().numpy(), "dy_a": pairs[:, 0, 1].long().numpy(),
        "dx_b": pairs[:, 1, 0].long().numpy(), "dy_b": pairs[:, 1, 1].long().numpy(),
        "pred_a": pred_a.cpu().numpy(), "pred_b": pred_b.cpu().numpy(),
    })
    samples["consistent"] = samples["pred_a"] == samples["pred_b"]
    return ShiftConsistency(samples=samples[list(SAMPLE_COLUMNS)], grid=_grid_records(indices, label_list, grid))


def random_shift_pair(seed: int, index: int, max_shift: int = MAX_SHIFT) -> tuple[int, int, int, int]:
    """The two different shifts ``(dx_a, dy_a, dx_b, dy_b)`` of the image at data set position ``index``.

    Drawn uniformly without replacement from the integer shifts with
    ``1 <= max(|dx|, |dy|) <= max_shift`` by a generator seeded with ``(seed, index)``.
    """
    shifts = [shift for shift in grid_shifts(max_shift) if shift != (0, 0)]
    first, second = np.random.default_rng([seed, int(index), _STREAM]).choice(len(shifts), size=2, replace=False)
    return (*shifts[first], *shifts[second])


def grid_shifts(max_shift: int = MAX_SHIFT) -> list[tuple[int, int]]:
    """Every integer shift ``(dx, dy)`` with ``|dx|, |dy| <= max_shift``, sorted by dx then dy."""
    span = range(-max_shift, max_shift + 1)
    return [(dx, dy) for dx in span for dy in span]


def predict_shifted(model: nn.Module, x: Tensor, shifts: Tensor, batch_size: int) -> Tensor:
    """Predicted classes of ``x`` shifted by ``shifts``.

    Args:
        model: Classifier in eval mode.
        x: ``(N, C, H, W)`` images on the model's device.
        shifts: ``(N, 2)`` or ``(1, 2)`` float64 ``(dx, dy)`` in pixels (one row for all).
        batch_size: Images per forward pass.

    Returns:
        ``(N,)`` int64 predictions on ``x``'s device.
    """
    common = len(shifts) == 1 and bool((shifts == shifts.round()).all())
    shifts = shifts.expand(len(x), 2)
    parts = []
    for start in range(0, len(x), batch_size):
        chunk = slice(start, start + batch_size)
        if common:  # one whole-pixel shift for all: moving the pixels is exact and much cheaper than warp
            shifted = integer_shift(x[chunk], int(shifts[0, 0]), int(shifts[0, 1]))
        else:
            shifted = warp(x[chunk], 0.0, shifts[chunk, 0], shifts[chunk, 1])
        parts.append(predict(model, shifted, batch_size))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=x.device)


def integer_shift(x: Tensor, dx: int, dy: int) -> Tensor:
    """``(N, C, H, W)`` images moved ``dx`` pixels right and ``dy`` down, zeros shifted in
    (what :func:`~robustbench_win.attacks.spatial.warp` gives for a whole-pixel translation)."""
    height, width = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dx) < width and abs(dy) < height:
        out[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
            x[..., max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    return out


def consistency(samples: pd.DataFrame) -> float:
    """Percentage of images whose predictions agree under the two shifts (NaN for no images)."""
    return float(samples["consistent"].mean() * 100.0) if len(samples) else float("nan")


def shift_accuracy_table(grid: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (percent) under each grid shift, columns :data:`SHIFT_ACCURACY_COLUMNS`.

    Args:
        grid: Per-sample grid records (:attr:`ShiftConsistency.grid`), of one model.
    """
    table = grid.groupby(["dx", "dy"], as_index=False).agg(n_samples=("correct", "size"), n_correct=("correct", "sum"))
    table["accuracy"] = 100.0 * table["n_correct"] / table["n_samples"]
    return table[list(SHIFT_ACCURACY_COLUMNS)]


def _grid_records(indices: list[int], labels: list[int], grid: list[tuple[tuple[int, int], Tensor]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"index": indices, "label": labels, "dx": dx, "dy": dy, "pred": pred.cpu().numpy()})
        for (dx, dy), pred in grid
    ]
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(GRID_COLUMNS[:-1]))
    records["correct"] = records["pred"] == records["label"]
    return records[list(GRID_COLUMNS)]


# --------------------------------------------------------------------------- the stored measure

SHIFT_MEASURE = "consistency"  # step name of the per-image shift records
SHIFT_GRID_MEASURE = "grid"  # step name of the per-shift accuracy records
SHIFT_SEED = 4321  # fixed: every model of every run sees the same two shifts of each image
SHIFT_RECORDS = measure_records("shift", Schema.of(ShiftSample), unique=("index",), sort=("index",))
SHIFT_ACCURACY_RECORDS = measure_records("shift_accuracy", Schema.of(ShiftAccuracy), unique=("dx", "dy"),
                                         sort=("dx", "dy"))


def shift_rows(model: nn.Module, images: Tensor, labels: Tensor,
               indices: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-image records under two random shifts and per-shift accuracies (seed :data:`SHIFT_SEED`).

    Returns:
        ``(samples, accuracies)``: rows of :data:`SAMPLE_COLUMNS` and of :data:`SHIFT_ACCURACY_COLUMNS`.
    """
    result = shift_consistency(model, images, labels, indices, seed=SHIFT_SEED)
    return result.samples.to_dict("records"), shift_accuracy_table(result.grid).to_dict("records")


def _records(measured: MeasureInput) -> tuple[Rows, Rows]:
    return shift_rows(measured.model, measured.images, measured.labels, measured.indices)


SHIFT_CONSISTENCY = Measure("shift", ((SHIFT_RECORDS, SHIFT_MEASURE), (SHIFT_ACCURACY_RECORDS, SHIFT_GRID_MEASURE)),
                            _records)
