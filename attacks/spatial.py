"""Spatial (rotation + translation) attacks: exhaustive grid and random search.

Engstrom, Tran, Tsipras, Schmidt & Madry, "Exploring the Landscape of Spatial Robustness",
ICML 2019 (first circulated as "A Rotation and a Translation Suffice: Fooling CNNs with
Simple Transformations", https://arxiv.org/abs/1712.02779).

Geometry, used for every recorded transform (:class:`~robustbench_win.attacks.result.SampleResult` fields
``angle``, ``dx``, ``dy``): the image is rotated about its centre by ``angle`` degrees,
counter-clockwise as displayed (row 0 at the top; as ``torchvision``'s and ``scipy``'s
``rotate``), then translated ``dx`` pixels right and ``dy`` pixels down in the image frame.
Bilinear interpolation, zeros outside the image. A translation of 1 moves the content exactly
one pixel (``align_corners=False`` with ``2 / size`` per pixel).

Search order: transforms are tried by increasing *magnitude*
``|angle| / max_rotation + max(|dx|, |dy|) / max_translation`` (each range scaled to [0, 1]),
ties broken by ``|angle|``, then ``|dx| + |dy|``, then ``angle``, ``dx``, ``dy``. The first
fooling transform is therefore the smallest one in this order: a spatial analogue of
DeepFool's minimal norm. Whether a sample is fooled at all does not depend on the order.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustbench_win.attacks.base import Attack, BatchOutput, check_non_negative, check_positive_int


def warp(x: Tensor, angle: Tensor | float, dx: Tensor | float, dy: Tensor | float) -> Tensor:
    """Rotate each image about its centre, then translate it (bilinear, zero padding).

    Args:
        x: ``(N, C, H, W)`` images.
        angle: Degrees, counter-clockwise as displayed; a scalar or ``(N,)``.
        dx: Pixels to the right; a scalar or ``(N,)``.
        dy: Pixels down; a scalar or ``(N,)``.

    Returns:
        ``(N, C, H, W)`` warped images, clamped to the input's value range [0, 1] where the
        interpolation weights round past it. The identity transform returns ``x`` exactly.
    """
    return sample(x, *sampling_grid(x.shape, angle, dx, dy, device=x.device, dtype=x.dtype))


def sampling_grid(
    shape: Sequence[int], angle: Tensor | float, dx: Tensor | float, dy: Tensor | float, *,
    device: torch.device, dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """The ``grid_sample`` grid of each transform in :func:`warp`, and which transforms are the identity.

    Args:
        shape: ``(N, C, H, W)`` of the images to warp.
        angle, dx, dy: As in :func:`warp`, scalars or ``(N,)``.

    Returns:
        ``(N, H, W, 2)`` grid and ``(N,)`` bool identity flags, on ``device``.
    """
    n, _, height, width = shape
    # Geometry in float64 on the CPU (some devices lack float64), then moved to the device.
    angle, dx, dy = (torch.as_tensor(v, dtype=torch.float64).cpu().expand(n) for v in (angle, dx, dy))
    rad = torch.deg2rad(angle)
    c, s = torch.cos(rad), torch.sin(rad)
    # Output pixel p samples the input at R^-1 (p - t), with R the counter-clockwise rotation
    # [[c, s], [-s, c]] in (x right, y down) pixels about the centre. In grid_sample's
    # normalised coordinates (align_corners=False, 2 / W per pixel in x, 2 / H in y) the
    # linear part is S R^-1 S^-1 with S = diag(2 / W, 2 / H).
    theta = torch.stack([
        torch.stack([c, -s * height / width, -2.0 / width * (c * dx - s * dy)], dim=1),
        torch.stack([s * width / height, c, -2.0 / height * (s * dx + c * dy)], dim=1),
    ], dim=1)  # (N, 2, 3)
    grid = F.affine_grid(theta.to(device=device, dtype=dtype), list(shape), align_corners=False)
    return grid, ((angle == 0) & (dx == 0) & (dy == 0)).to(device)


def sample(x: Tensor, grid: Tensor, identity: Tensor) -> Tensor:
    """``x`` resampled at ``grid`` (bilinear, zeros outside, clamped to [0, 1]); ``x`` itself where ``identity``."""
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0.0, 1.0)
    return torch.where(identity.view(-1, 1, 1, 1), x, out)


def magnitude(transforms: Tensor, max_rotation: float, max_translation: float) -> Tensor:
    """Search-order key ``|angle| / max_rotation + max(|dx|, |dy|) / max_translation``.

    Args:
        transforms: ``(..., 3)`` rows ``(angle, dx, dy)``.
    """
    angle, dx, dy = transforms.abs().unbind(-1)
    rotation = angle / max_rotation if max_rotation > 0 else torch.zeros_like(angle)
    translation = torch.maximum(dx, dy) / max_translation if max_translation > 0 else torch.zeros_like(dx)
    return rotation + translation


def check_limits(max_translation: Any, max_rotation: Any) -> tuple[float, float]:
    """Validate the search limits shared by every spatial attack; raise ``ValueError``."""
    max_translation = check_non_negative("max_translation", max_translation)
    max_rotation = check_non_negative("max_rotation", max_rotation)
    if max_rotation > 180:
        raise ValueError(f"max_rotation must be at most 180 degrees, got {max_rotation}")
    return max_translation, max_rotation


@dataclass(frozen=True)
class SpatialGridParameters:
    """A rotation x translation grid: the one place its defaults and checks live.

    Every grid attack (our own search and the foolbox and ART adapters) holds one of these.
    The defaults are DESIGN.md's grid (Engstrom et al., ICML 2019).

    Attributes:
        max_translation: Largest translation along x and along y, pixels.
        max_rotation: Largest rotation, degrees (at most 180).
        num_translations: Grid points per translation axis (odd counts include 0).
        num_rotations: Grid points of the rotation (odd counts include 0).
    """

    max_translation: float = 3.0  # pixels
    max_rotation: float = 30.0  # degrees
    num_translations: int = 5
    num_rotations: int = 31

    def __post_init__(self) -> None:
        translation, rotation = check_limits(self.max_translation, self.max_rotation)
        object.__setattr__(self, "max_translation", translation)
        object.__setattr__(self, "max_rotation", rotation)
        check_positive_int("num_translations", self.num_translations)
        check_positive_int("num_rotations", self.num_rotations)

    @property
    def size(self) -> int:
        """Transforms in the grid, identity included for odd counts."""
        return self.num_rotations * self.num_translations**2

    def angles(self) -> np.ndarray:
        """The ``num_rotations`` rotation angles, degrees, evenly spaced from -max to max."""
        return np.linspace(-self.max_rotation, self.max_rotation, self.num_rotations)

    def shifts(self) -> np.ndarray:
        """The ``num_translations`` translations of one axis, pixels, evenly spaced from -max to max."""
        return np.linspace(-self.max_translation, self.max_translation, self.num_translations)

    def as_dict(self) -> dict[str, Any]:
        """The four parameters by name, for an attack's ``params()``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def fact(self) -> str:
        """One sentence on the size of the grid, from its parameters."""
        rotations, translations = self.num_rotations, self.num_translations
        return (f"Grid: {rotations} rotations in [-{self.max_rotation:g}°, {self.max_rotation:g}°] × "
                f"{translations} × {translations} translations in [-{self.max_translation:g}, "
                f"{self.max_translation:g}] px = {self.size} transforms.")


DEFAULT_GRID = SpatialGridParameters()


def grid_transforms(grid: SpatialGridParameters = DEFAULT_GRID) -> Tensor:
    """The full grid ``(grid.size, 3)`` as rows ``(angle, dx, dy)``, in search order (module doc)."""
    shifts = grid.shifts()
    rows = np.array([(a, dx, dy) for a in grid.angles() for dx in shifts for dy in shifts], dtype=np.float64)
    rows[np.abs(rows) < 1e-12] = 0.0  # linspace can give -0.0 or 1e-16 for the centre
    key = magnitude(torch.from_numpy(rows), grid.max_rotation, grid.max_translation).numpy()
    # np.lexsort sorts by the last key first.
    order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0], np.abs(rows[:, 1]) + np.abs(rows[:, 2]),
                        np.abs(rows[:, 0]), np.round(key, 12)))
    return torch.from_numpy(rows[order])


class GridAttack(Attack):
    """Base of the attacks that search a :class:`SpatialGridParameters` grid: holds and checks it."""

    family: ClassVar[str] = "spatial"
    def __init__(
        self,
        *,
        max_translation: float = DEFAULT_GRID.max_translation,
        max_rotation: float = DEFAULT_GRID.max_rotation,
        num_translations: int = DEFAULT_GRID.num_translations,
        num_rotations: int = DEFAULT_GRID.num_rotations,
    ) -> None:
        self.grid = SpatialGridParameters(max_translation, max_rotation, num_translations, num_rotations)

    def params(self) -> dict[str, Any]:
        return self.grid.as_dict()


class _SpatialSearch(Attack):
    """Shared search: try each sample's transforms in order, stop at the first that fools."""

    family: ClassVar[str] = "spatial"
    channels_last: ClassVar[bool] = True

    @abstractmethod
    def _transforms(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        """``(B, T, 3)`` float64 transforms of each sample, in search order."""

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        transforms = self._transforms(x, indices).to(x.device)
        position = first_fooling(model, x, y, transforms, budget=batch_size)
        fooled = position >= 0
        rows = torch.nonzero(fooled).flatten()
        chosen = torch.full((len(x), 3), math.nan, dtype=torch.float64, device=x.device)
        chosen[rows] = transforms[rows, position[rows]]
        x_adv = x.clone()
        if len(rows):
            x_adv[rows] = warp(x[rows], *chosen[rows].unbind(1))
        iterations = torch.where(fooled, position + 1, transforms.shape[1])
        return BatchOutput(x_adv=x_adv, iterations=iterations, success=fooled, transforms=chosen.cpu())


def first_fooling(model: nn.Module, x: Tensor, y: Tensor, transforms: Tensor, *, budget: int) -> Tensor:
    """Position of the first transform of each sample that makes ``model`` misclassify it.

    Args:
        model: Classifier in eval mode.
        x: ``(B, C, H, W)`` images, correctly classified.
        y: ``(B,)`` labels.
        transforms: ``(B, T, 3)`` rows ``(angle, dx, dy)`` per sample, in search order.
        budget: Images per forward pass. Fooled samples leave the search; the transforms of
            the remaining ones are evaluated ``budget // remaining`` at a time.

    Returns:
        ``(B,)`` int64 position in ``[0, T)``, or -1 where no transform fools the sample.
    """
    batch, total = transforms.shape[:2]
    position = torch.full((batch,), -1, dtype=torch.long, device=x.device)
    if batch == 0:
        return position
    # Samples sharing one list of transforms (the grid) share its sampling grids: built once
    # for the T transforms rather than once per image and transform.
    shared = bool((transforms == transforms[:1]).all())
    if shared:
        grids, identity = sampling_grid((total, *x.shape[1:]), *transforms[0].unbind(1), device=x.device, dtype=x.dtype)
    active = torch.arange(batch, device=x.device)
    start = 0
    while len(active) and start < total:
        chunk = min(max(1, budget // len(active)), total - start)
        images = x[active].repeat_interleave(chunk, dim=0)
        if shared:
            warped = sample(images, grids[start:start + chunk].repeat(len(active), 1, 1, 1),
                            identity[start:start + chunk].repeat(len(active)))
        else:
            warped = warp(images, *transforms[active, start:start + chunk].reshape(-1, 3).unbind(1))  # (A * chunk)
        with torch.no_grad():
            pred = model(warped).argmax(dim=1).view(len(active), chunk)
        fooled = pred != y[active, None]
        hit = fooled.any(dim=1)
        position[active[hit]] = start + fooled[hit].to(torch.int8).argmax(dim=1)
        active = active[~hit]
        start += chunk
    return position


SMALLEST_FIRST = ("tried from the smallest up (|angle| / max_rotation + max(|dx|, |dy|) / max_translation), "
                  "so the recorded transform is the smallest {0} that fools the sample")


class SpatialGrid(_SpatialSearch, GridAttack):
    """Worst case over a rotation x translation grid (Engstrom et al., ICML 2019, arXiv:1712.02779).

    A sample is robust only if every grid transform keeps it correctly classified. Transforms
    are tried by increasing magnitude (module docstring), so the recorded transform is the
    smallest one that fools the sample; a sample leaves the search once fooled. The identity
    is part of a grid with odd counts.

    Args:
        max_translation: Largest translation along x and along y, pixels.
        max_rotation: Largest rotation, degrees (at most 180).
        num_translations: Grid points per translation axis (odd counts include 0).
        num_rotations: Grid points of the rotation (odd counts include 0).
    """

    name: ClassVar[str] = "spatial-grid"

    @cached_property
    def search_order(self) -> Tensor:
        """``(grid.size, 3)`` transforms of :attr:`grid` in search order."""
        return grid_transforms(self.grid)

    def facts(self) -> list[str]:
        return [self.grid.fact(), f"A sample is robust only if no transform fools it; transforms are "
                                  f"{SMALLEST_FIRST.format('grid transform')}."]

    def _transforms(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        return self.search_order.unsqueeze(0).expand(len(x), -1, -1)


class SpatialRandom(_SpatialSearch):
    """Worst of a few random rotations + translations per sample (Engstrom et al., ICML 2019).

    Each sample gets ``trials`` transforms drawn uniformly from ``[-max_rotation,
    max_rotation]`` degrees and ``[-max_translation, max_translation]`` pixels along x and y,
    from a generator seeded with ``(seed, index)``: a sample gets the same transforms
    whatever the batch or the subset it is attacked in. They are tried by increasing
    magnitude; the recorded transform is the smallest that fools the sample.

    Args:
        trials: Random transforms per sample (the paper's "worst of 10").
        seed: Non-negative integer seed.
        max_translation: Largest translation along x and along y, pixels.
        max_rotation: Largest rotation, degrees (at most 180).
    """

    name: ClassVar[str] = "spatial-random"

    def __init__(
        self,
        *,
        trials: int = 10,
        seed: int = 0,
        max_translation: float = DEFAULT_GRID.max_translation,
        max_rotation: float = DEFAULT_GRID.max_rotation,
    ) -> None:
        self.max_translation, self.max_rotation = check_limits(max_translation, max_rotation)
        self.trials = check_positive_int("trials", trials)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed

    def params(self) -> dict[str, Any]:
        return {
            "trials": self.trials, "seed": self.seed,
            "max_translation": self.max_translation, "max_rotation": self.max_rotation,
        }

    def facts(self) -> list[str]:
        return [f"{self.trials} transforms per sample, drawn uniformly from [-{self.max_rotation:g}°, "
                f"{self.max_rotation:g}°] and [-{self.max_translation:g}, {self.max_translation:g}] px along x "
                f"and y by a generator seeded with (seed {self.seed}, test index), "
                f"{SMALLEST_FIRST.format('of them')}."]

    def sample_transforms(self, index: int) -> Tensor:
        """The ``(trials, 3)`` transforms of the sample at data set position ``index``, in search order."""
        rng = np.random.default_rng([self.seed, int(index)])
        limits = np.array([self.max_rotation, self.max_translation, self.max_translation])
        drawn = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(self.trials, 3)) * limits)
        key = magnitude(drawn, self.max_rotation, self.max_translation)
        return drawn[torch.argsort(key, stable=True)]

    def _transforms(self, x: Tensor, indices: Sequence[int]) -> Tensor:
        return torch.stack([self.sample_transforms(i) for i in indices])
