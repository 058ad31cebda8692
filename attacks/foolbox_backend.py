"""Adapters running foolbox 3 attacks under the common :class:`~robustbench_win.attacks.base.Attack` API.

foolbox is a peer to cross-check our own implementations against (DESIGN.md section 2); it is
imported only when one of these attacks is called.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import Attack, BatchOutput, check_positive_int
from robustbench_win.attacks.result import ITERATIONS_NOT_REPORTED
from robustbench_win.attacks.deepfool import DeepFoolParameters
from robustbench_win.attacks.minimal_norm_loop import check_fraction, check_positive
from robustbench_win.attacks.spatial import GridAttack

# Schedules foolbox 3.3 fixes inside L2FMNAttack (final gamma) and DDNAttack (step length,
# first to last): stated in the descriptions, not passed to foolbox.
FOOLBOX_FMN_FINAL_GAMMA = 0.001
FOOLBOX_DDN_STEP_LENGTH = (1.0, 0.01)

# Two images are the same foolbox transform if they differ by less than this (float32 warps).
_MATCH_TOLERANCE = 1e-5


class FoolboxDeepFool(DeepFoolParameters):
    """foolbox 3 ``L2DeepFoolAttack`` (Moosavi-Dezfooli et al., CVPR 2016, arXiv:1511.04599).

    Runs ``foolbox.attacks.L2DeepFoolAttack(steps, candidates, overshoot, loss="logits")`` on
    each batch, as a reference for :class:`robustbench_win.attacks.deepfool.DeepFool`, which has the same
    semantics. foolbox keeps computing every sample of a batch until all are fooled, and does
    not report per-sample steps: ``iterations`` is -1.

    Args:
        steps: Maximum number of DeepFool steps.
        candidates: Most likely classes considered (true class included).
        overshoot: ``eta`` in ``x0 + (1 + eta) * r_tot``.
    """

    name: ClassVar[str] = "deepfool-foolbox"

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        import foolbox

        attack = foolbox.attacks.L2DeepFoolAttack(
            steps=self.steps, candidates=self.candidates, overshoot=self.overshoot, loss="logits"
        )
        fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
        x_adv, _, success = attack(fmodel, x, foolbox.criteria.Misclassification(y), epsilons=None)
        iterations = torch.full((len(x),), ITERATIONS_NOT_REPORTED, dtype=torch.long)
        return BatchOutput(x_adv=x_adv, iterations=iterations, success=success)


class FoolboxSpatial(GridAttack):
    """foolbox 3 ``SpatialAttack`` grid search (Engstrom et al., ICML 2019, arXiv:1712.02779).

    Runs ``foolbox.attacks.SpatialAttack(max_translation, max_rotation, num_translations,
    num_rotations, grid_search=True)``: rotations outer, x then y translations inner, first
    fooling transform per sample. foolbox does not say which transform fooled a sample, so
    it is recovered afterwards by replaying foolbox's grid on the fooled images (warps only,
    no model calls) and converted to the convention of :func:`robustbench_win.attacks.spatial.warp`
    by :func:`foolbox_to_warp`. foolbox's pixels and the frame of its translation differ from
    :class:`robustbench_win.attacks.spatial.SpatialGrid`'s, so the grids hold different
    transforms and the fooled sets can differ on a few borderline samples (``docs/attacks.md``).

    Args:
        max_translation: Largest foolbox translation, in foolbox's nominal pixels.
        max_rotation: Largest rotation, degrees.
        num_translations: Grid points per translation axis.
        num_rotations: Grid points of the rotation.
    """

    name: ClassVar[str] = "spatial-foolbox"

    def facts(self) -> list[str]:
        return [self.grid.fact(), "foolbox tries rotations outer and translations inner and keeps the first "
                "transform that fools each sample (first in its order, not the smallest). It does not report "
                "which one; the adapter recovers it by replaying foolbox's grid and records it in this suite's "
                "convention (a foolbox pixel moves the content (size - 1) / size px, in the rotated frame)."]

    def foolbox_grid(self) -> np.ndarray:
        """foolbox's grid in its search order: ``(T, 3)`` rows ``(angle, dx, dy)``, its units."""
        angles, shifts = self.grid.angles(), self.grid.shifts()
        return np.array([(a, dx, dy) for a in angles for dx in shifts for dy in shifts], dtype=np.float64)

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        import foolbox

        attack = foolbox.attacks.SpatialAttack(**self.grid.as_dict(), grid_search=True)
        fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
        with _quiet_meshgrid():
            x_adv, _, success = attack(fmodel, x, foolbox.criteria.Misclassification(y))
            # Bilinear weights can sum to 1 + 1 ulp; a clamp keeps the images inside [0, 1].
            x_adv = x_adv.clamp(0.0, 1.0)
            position, transforms = self._recover_transforms(x, x_adv, success)
        iterations = torch.where(position >= 0, position + 1, self.grid.size)
        return BatchOutput(x_adv=x_adv, iterations=iterations, success=success, transforms=transforms)

    def _recover_transforms(self, x: Tensor, x_adv: Tensor, success: Tensor) -> tuple[Tensor, Tensor]:
        """Position in foolbox's grid and our ``(angle, dx, dy)`` of the transform each sample got."""
        from foolbox.attacks.spatial_attack_transformations import rotate_and_shift
        import eagerpy as ep

        position = torch.full((len(x),), -1, dtype=torch.long)
        transforms = torch.full((len(x), 3), math.nan, dtype=torch.float64)
        pending = torch.nonzero(success.cpu()).flatten()
        for t, (angle, dx, dy) in enumerate(self.foolbox_grid()):
            if len(pending) == 0:
                break
            warped = rotate_and_shift(ep.astensor(x[pending]), translation=(dx, dy), rotation=angle).raw
            diff = (warped.clamp(0.0, 1.0) - x_adv[pending]).flatten(1).abs().amax(dim=1).cpu()
            match = diff < _MATCH_TOLERANCE
            hits = pending[match]
            position[hits] = t
            transforms[hits] = torch.tensor(foolbox_to_warp(angle, dx, dy, x.shape[-2:]), dtype=torch.float64)
            pending = pending[~match]
        return position, transforms


@contextmanager
def _quiet_meshgrid() -> Iterator[None]:
    # foolbox 3.3 calls torch.meshgrid without ``indexing``; the default it relies on ("ij")
    # is what it gets, so the deprecation warning is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release", category=UserWarning)
        yield


def foolbox_to_warp(angle: float, dx: float, dy: float, size: Sequence[int]) -> tuple[float, float, float]:
    """Convert a foolbox ``rotate_and_shift`` transform to :func:`robustbench_win.attacks.spatial.warp`'s.

    foolbox samples the input at ``A p + t`` (normalised ``align_corners=True`` coordinates,
    ``A`` the rotation matrix ``[[c, -s], [s, c]]``, ``t = (dx / (H / 2), dy / (W / 2))``).
    In pixels about the centre that is ``t_px = (dx (W - 1) / H, dy (H - 1) / W)``, and the
    content moves as ``p = A^-1 q - A^-1 t_px``: rotation by ``angle`` counter-clockwise as
    displayed, then translation by ``-R(angle) t_px`` with ``R = A^-1``. Exact for square
    images (foolbox's rotation is anisotropic on non-square ones).

    Returns:
        ``(angle, dx, dy)`` in degrees and pixels, our convention.
    """
    height, width = int(size[0]), int(size[1])
    tx, ty = dx * (width - 1) / height, dy * (height - 1) / width
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    # R = A^-1 = [[c, s], [-s, c]]; content translation = -R t_px.
    return float(angle), -(c * tx + s * ty), -(-s * tx + c * ty)


class FoolboxFMN(Attack):
    """foolbox 3 ``L2FMNAttack`` (Pintor et al., NeurIPS 2021, arXiv:2102.12827), as shipped.

    Runs ``foolbox.attacks.L2FMNAttack(steps, max_stepsize=alpha_init,
    min_stepsize=alpha_final, gamma=gamma_init)`` (its final gamma is fixed at 0.001) on each
    batch, as a peer for :class:`robustbench_win.attacks.fmn.FMN`. In foolbox 3.3 the L2
    projection onto the norm budget does nothing (``L2FMNAttack.project`` scales by
    ``minimum(1, norms / norms)``, which is 1), so this is normalised gradient descent on the
    logit margin that keeps the smallest adversarial point: it fools more digits than the
    paper's algorithm without box-aware steps, at larger norms. foolbox runs every sample for
    all ``steps`` and does not report steps: ``iterations`` is -1.

    Args:
        steps: Gradient steps.
        alpha_init: First step length (foolbox's ``max_stepsize``).
        alpha_final: Last step length (``min_stepsize``); ``None``: ``alpha_init / 100``.
        gamma_init: First relative change of the norm budget (foolbox's ``gamma``).
    """

    name: ClassVar[str] = "fmn-foolbox"
    family: ClassVar[str] = "minimal-norm"

    def __init__(
        self, *, steps: int = 200, alpha_init: float = 1.0, alpha_final: float | None = None, gamma_init: float = 0.05
    ) -> None:
        self.steps = check_positive_int("steps", steps)
        self.alpha_init = check_positive("alpha_init", alpha_init)
        self.alpha_final = self.alpha_init / 100 if alpha_final is None else check_positive("alpha_final", alpha_final)
        self.gamma_init = check_fraction("gamma_init", gamma_init)

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "alpha_init": self.alpha_init, "alpha_final": self.alpha_final,
                "gamma_init": self.gamma_init}

    def facts(self) -> list[str]:
        return ["Its L2 projection is a no-op (foolbox 3.3): normalised gradient descent on the logit margin that "
                "keeps the smallest adversarial point.",
                f"Over {self.steps} steps the step length decays from {self.alpha_init:g} to {self.alpha_final:g} and "
                f"gamma from {self.gamma_init:g} to foolbox's fixed {FOOLBOX_FMN_FINAL_GAMMA:g}."]

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        import foolbox

        attack = foolbox.attacks.L2FMNAttack(
            steps=self.steps, max_stepsize=self.alpha_init, min_stepsize=self.alpha_final, gamma=self.gamma_init
        )
        return run_minimization_attack(attack, model, x, y)


class FoolboxDDN(Attack):
    """foolbox 3 ``DDNAttack`` (Rony et al., CVPR 2019, arXiv:1811.09600).

    Runs ``foolbox.attacks.DDNAttack(steps, gamma, init_epsilon=initial_norm)`` on each
    batch, as a peer for :class:`robustbench_win.attacks.ddn.DDN` (same algorithm: step
    length 1 -> 0.01 along a cosine, no quantisation). foolbox runs every sample for all
    ``steps`` and does not report steps: ``iterations`` is -1.

    Args:
        steps: Gradient steps.
        gamma: Relative change of the norm per step.
        initial_norm: Norm of the first step (foolbox's ``init_epsilon``).
    """

    name: ClassVar[str] = "ddn-foolbox"
    family: ClassVar[str] = "minimal-norm"

    def __init__(self, *, steps: int = 200, gamma: float = 0.05, initial_norm: float = 1.0) -> None:
        self.steps = check_positive_int("steps", steps)
        self.gamma = check_fraction("gamma", gamma)
        self.initial_norm = check_positive("initial_norm", initial_norm)

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "gamma": self.gamma, "initial_norm": self.initial_norm}

    def facts(self) -> list[str]:
        return [f"Over {self.steps} steps the norm changes by a factor 1 ± {self.gamma:g} per step from "
                f"{self.initial_norm:g}, and the step length decays along foolbox's fixed schedule from "
                f"{FOOLBOX_DDN_STEP_LENGTH[0]:g} to {FOOLBOX_DDN_STEP_LENGTH[1]:g}."]

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        import foolbox

        attack = foolbox.attacks.DDNAttack(steps=self.steps, gamma=self.gamma, init_epsilon=self.initial_norm)
        return run_minimization_attack(attack, model, x, y)


def run_minimization_attack(attack: Any, model: nn.Module, x: Tensor, y: Tensor) -> BatchOutput:
    """Run a foolbox minimisation attack (``epsilons=None``) on one batch; steps not reported."""
    import foolbox

    fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    x_adv, _, success = attack(fmodel, x, foolbox.criteria.Misclassification(y), epsilons=None)
    iterations = torch.full((len(x),), ITERATIONS_NOT_REPORTED, dtype=torch.long)
    return BatchOutput(x_adv=x_adv, iterations=iterations, success=success)
