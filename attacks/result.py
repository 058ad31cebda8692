"""The per-sample result every attack returns, whatever its backend."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

# The stored columns of a result, in file order (robustbench_win.store derives its schema from
# these fields and their types).
RECORD_FIELDS: tuple[str, ...] = (
    "index", "label", "clean_pred", "attacked", "adv_pred", "success", "l2", "rho", "iterations",
    "dx", "dy", "angle",
)

# ``iterations`` value of a backend that does not say how many steps it used (foolbox's and
# ART's DeepFool).
ITERATIONS_NOT_REPORTED = -1


@dataclass
class SampleResult:
    """What one attack did to one sample.

    Geometry of the spatial fields (the convention of :func:`robustbench_win.attacks.spatial.warp`): the image
    is first rotated about its centre by ``angle`` degrees, counter-clockwise as displayed
    (row 0 at the top; the convention of ``torchvision.transforms.functional.rotate`` and
    ``scipy.ndimage.rotate``), then translated by ``dx`` pixels to the right and ``dy`` pixels
    down, in the image frame.

    Attributes:
        index: Position of the sample in the data set's test split (given by the caller).
        label: True class.
        clean_pred: Prediction on the clean image.
        attacked: ``False`` when the clean prediction was already wrong (not attacked).
        success: Verified: ``argmax f(x_adv) != label`` and ``x_adv`` within [0, 1].
        adv_pred: Prediction on ``x_adv`` (``== clean_pred`` when not attacked).
        l2: ``||x_adv - x||_2`` in [0, 1] pixel space; ``nan`` when not attacked. For a failed
            attack this is the norm of the last candidate (DeepFool) or 0 (spatial search
            that found no fooling transform, whose ``x_adv`` is the clean image).
        rho: ``l2 / ||x||_2`` (the DeepFool paper's rho); ``nan`` when not attacked.
        iterations: DeepFool: steps used. Spatial: position (1-based) of the fooling transform
            in the search order, i.e. the number of transforms the sample needed; the size of
            the search when none fooled it. ``-1`` when a backend does not report it.
        dx: Spatial only: translation in pixels, ``+`` = right. ``None`` for DeepFool, for
            samples not attacked and when ``x_adv`` is the untransformed image.
        dy: Spatial only: translation in pixels, ``+`` = down.
        angle: Spatial only: rotation in degrees, ``+`` = counter-clockwise as displayed.
        x_adv: ``(C, H, W)`` CPU float32 adversarial candidate; ``None`` if not attacked.
    """

    index: int
    label: int
    clean_pred: int
    attacked: bool
    success: bool
    adv_pred: int
    l2: float
    rho: float
    iterations: int
    dx: float | None = None
    dy: float | None = None
    angle: float | None = None
    x_adv: torch.Tensor | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The :data:`RECORD_FIELDS` as plain Python values (no tensor), e.g. for a table row."""
        return {name: _plain(getattr(self, name)) for name in RECORD_FIELDS}

    @classmethod
    def not_attacked(cls, index: int, label: int, clean_pred: int) -> SampleResult:
        """Result for a sample the model already misclassifies: nothing to attack."""
        return cls(
            index=index, label=label, clean_pred=clean_pred, attacked=False, success=False,
            adv_pred=clean_pred, l2=math.nan, rho=math.nan, iterations=0,
        )


def _plain(value: Any) -> Any:
    # numpy and torch scalars -> Python scalars; None, bool, int, float pass through.
    if value is not None and not isinstance(value, (bool, int, float)) and hasattr(value, "item"):
        return value.item()
    return value
