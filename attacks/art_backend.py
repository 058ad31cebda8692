"""Adapters running Adversarial Robustness Toolbox (ART) attacks under the common API.

ART is a second peer for cross-checks (DESIGN.md section 2). It works on numpy arrays through
a ``PyTorchClassifier`` wrapper with ``clip_values=(0, 1)``; it is imported only when one of
these attacks is called.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import BatchOutput
from robustbench_win.attacks.result import ITERATIONS_NOT_REPORTED
from robustbench_win.attacks.deepfool import DeepFoolParameters
from robustbench_win.attacks.spatial import GridAttack


class ArtDeepFool(DeepFoolParameters):
    """ART ``DeepFool`` (Moosavi-Dezfooli et al., CVPR 2016, arXiv:1511.04599).

    Runs ``art.attacks.evasion.DeepFool(classifier, max_iter=steps, epsilon=overshoot,
    nb_grads=candidates)`` on each batch. The overshoot is set explicitly (ART's default is
    1e-6). ART does not report per-sample steps: ``iterations`` is -1. How ART's DeepFool
    differs from :class:`robustbench_win.attacks.deepfool.DeepFool` and foolbox's (overshoot
    applied once at the end, projected steps, labels ignored): ``docs/attacks.md``.

    Args:
        steps: ``max_iter``.
        candidates: ``nb_grads``.
        overshoot: ``epsilon``.
    """

    name: ClassVar[str] = "deepfool-art"

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        from art.attacks.evasion import DeepFool

        with _on_device(x.device):
            classifier = art_classifier(model, x, channels_first=True, predict_batch=batch_size)
            attack = DeepFool(
                classifier, max_iter=self.steps, epsilon=self.overshoot, nb_grads=self.candidates,
                batch_size=len(x), verbose=False,
            )
            x_adv = attack.generate(x.cpu().numpy())
        iterations = torch.full((len(x),), ITERATIONS_NOT_REPORTED, dtype=torch.long)
        return BatchOutput(x_adv=torch.from_numpy(x_adv).to(x.device), iterations=iterations)


class ArtSpatial(GridAttack):
    """ART ``SpatialTransformation``: ONE global transform per batch, a different metric.

    Engstrom et al., ICML 2019 (arXiv:1712.02779), as implemented by ART: a grid search for
    the single rotation + translation that fools the most samples of the whole batch, applied
    to every sample. Its robust accuracy is an upper bound on the per-sample worst case of
    :class:`robustbench_win.attacks.spatial.SpatialGrid`, and it depends on ``batch_size``: do not put it in
    the same column as the per-sample attacks. The adapter converts pixels to ART's percent
    (``100 * max_translation / H``), feeds ART channels-last arrays (with channels first, ART
    sizes the vertical shift from the channel count and never tries one), and converts the
    recorded transform (``scipy.ndimage`` shift, then rotation about the centre) to
    :func:`robustbench_win.attacks.spatial.warp`'s rotate-then-translate convention:
    ``(dx, dy) = R(angle) (shift_x, shift_y)``, ``None`` when the best global transform is the
    identity. ``iterations`` is the size of the grid: ART evaluates every transform on every
    sample. ART's rounding and interpolation (ART 1.20 source): ``docs/attacks.md``.

    Args:
        max_translation: Largest translation, pixels (converted to ART's percent).
        max_rotation: Largest rotation, degrees.
        num_translations: Grid points per translation axis (before ART's rounding).
        num_rotations: Grid points of the rotation.
    """

    name: ClassVar[str] = "spatial-art"

    def params(self) -> dict[str, Any]:
        return super().params() | {"scope": "global-per-batch"}

    def facts(self) -> list[str]:
        return [self.grid.fact(), "ART picks the one transform that fools the most samples of a batch and "
                "applies it to every sample: an upper bound on the per-sample worst case that depends on the "
                "batch size, not comparable with per-sample grid results. ART rounds translations to whole "
                "pixels; vertical shifts are searched too (the adapter gives ART channels-last input, which "
                "avoids its channels-first bug)."]

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        from art.attacks.evasion import SpatialTransformation

        height = x.shape[2]
        percent = 100.0 * self.grid.max_translation / height
        if percent > 100:
            raise ValueError(f"max_translation {self.grid.max_translation} px exceeds the image height {height}")
        with _on_device(x.device):
            classifier = art_classifier(_ChannelsLast(model), x, channels_first=False, predict_batch=batch_size)
            attack = SpatialTransformation(
                classifier, max_translation=percent, num_translations=self.grid.num_translations,
                max_rotation=self.grid.max_rotation, num_rotations=self.grid.num_rotations, verbose=False,
            )
            x_adv = attack.generate(x.permute(0, 2, 3, 1).cpu().numpy())
        x_adv_t = torch.from_numpy(np.ascontiguousarray(x_adv.transpose(0, 3, 1, 2))).to(x.device)
        transform = art_to_warp(float(attack.attack_rot), float(attack.attack_trans_x), float(attack.attack_trans_y))
        transforms = torch.tensor([transform] * len(x), dtype=torch.float64)
        iterations = torch.full((len(x),), _art_grid_size(attack, x), dtype=torch.long)
        return BatchOutput(x_adv=x_adv_t, iterations=iterations, transforms=transforms)


def art_to_warp(rotation: float, shift_rows: float, shift_cols: float) -> tuple[float, float, float]:
    """ART's (rotation, vertical shift, horizontal shift) as :func:`robustbench_win.attacks.spatial.warp`'s ``(angle, dx, dy)``.

    ART moves the content by ``t = (shift_cols, shift_rows)`` (x right, y down), then rotates
    it about the centre by ``rotation`` degrees counter-clockwise: ``p = R (q + t) = R q + R t``
    with ``R = [[c, s], [-s, c]]``. Returns NaNs for the identity (nothing transformed).
    """
    if rotation == 0 and shift_rows == 0 and shift_cols == 0:
        return (math.nan, math.nan, math.nan)
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return float(rotation), c * shift_cols + s * shift_rows, -s * shift_cols + c * shift_rows


def art_classifier(model: nn.Module, x: Tensor, *, channels_first: bool, predict_batch: int) -> Any:
    """An ART ``PyTorchClassifier`` for ``model`` on inputs like ``x`` (clip values (0, 1)).

    Its ``predict`` uses at least ``predict_batch`` images per forward pass (ART's spatial
    attack asks for one at a time); the model is in eval mode, so the outputs are the same.
    """
    from art.estimators.classification import PyTorchClassifier

    class _Classifier(PyTorchClassifier):
        def predict(self, x: np.ndarray, batch_size: int = 128, **kwargs: Any) -> np.ndarray:
            return super().predict(x, batch_size=max(batch_size, predict_batch), **kwargs)

    with torch.no_grad():
        num_classes = int(model(x[:1].permute(0, 2, 3, 1) if not channels_first else x[:1]).shape[1])
    shape = tuple(x.shape[1:]) if channels_first else (x.shape[2], x.shape[3], x.shape[1])
    return _Classifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=shape, nb_classes=num_classes,
        clip_values=(0.0, 1.0), channels_first=channels_first,
        device_type="gpu" if x.device.type == "cuda" else "cpu",
    )


class _ChannelsLast(nn.Module):
    """Takes (N, H, W, C) input and calls the wrapped (N, C, H, W) model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def _art_grid_size(attack: Any, x: Tensor) -> int:
    """Transforms ART evaluated (after its rounding and de-duplication)."""
    height, width = x.shape[2], x.shape[3]
    p = attack.max_translation / 100.0
    rows = {int(round(v)) for v in np.linspace(-round(height * p), round(height * p), attack.num_translations)}
    cols = {int(round(v)) for v in np.linspace(-round(width * p), round(width * p), attack.num_translations)}
    rotations = set(np.linspace(-attack.max_rotation, attack.max_rotation, attack.num_rotations).tolist())
    return len(rows) * len(cols) * len(rotations)


@contextmanager
def _on_device(device: torch.device) -> Iterator[None]:
    # ART places tensors on the *current* CUDA device; make it the model's.
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        yield
