"""Built-in attacks, registered by name in :data:`robustbench_win.registry.ATTACKS`.

Each factory takes keyword-only hyper-parameters with the DESIGN.md defaults and returns an
:class:`~robustbench_win.attacks.base.Attack`; the first docstring line is what ``robustbench-win list
attacks`` shows.
"""

from __future__ import annotations

from robustbench_win.attacks.art_backend import ArtDeepFool, ArtSpatial
from robustbench_win.attacks.base import Attack
from robustbench_win.attacks.deepfool import DeepFool
from robustbench_win.attacks.foolbox_backend import FoolboxDeepFool, FoolboxSpatial
from robustbench_win.attacks.spatial import SpatialGrid, SpatialRandom
from robustbench_win.registry import register_attack


@register_attack("deepfool")
def deepfool(*, steps: int = 50, candidates: int = 10, overshoot: float = 0.02) -> Attack:
    """DeepFool L2 (Moosavi-Dezfooli et al. 2016), batched; 50 steps, top-10 classes, overshoot 0.02."""
    return DeepFool(steps=steps, candidates=candidates, overshoot=overshoot)


@register_attack("deepfool-foolbox")
def deepfool_foolbox(*, steps: int = 50, candidates: int = 10, overshoot: float = 0.02) -> Attack:
    """DeepFool L2 by foolbox 3 (L2DeepFoolAttack), the reference for `deepfool`."""
    return FoolboxDeepFool(steps=steps, candidates=candidates, overshoot=overshoot)


@register_attack("deepfool-art")
def deepfool_art(*, steps: int = 50, candidates: int = 10, overshoot: float = 0.02) -> Attack:
    """DeepFool by ART (projected steps, overshoot applied once at the end); cross-check for `deepfool`."""
    return ArtDeepFool(steps=steps, candidates=candidates, overshoot=overshoot)


@register_attack("spatial-grid")
def spatial_grid(
    *, max_translation: float = 3.0, max_rotation: float = 30.0, num_translations: int = 5, num_rotations: int = 31
) -> Attack:
    """Spatial worst case per sample over 31 rotations x 5 x 5 translations (Engstrom et al. 2019)."""
    return SpatialGrid(
        max_translation=max_translation, max_rotation=max_rotation,
        num_translations=num_translations, num_rotations=num_rotations,
    )


@register_attack("spatial-random")
def spatial_random(
    *, trials: int = 10, seed: int = 0, max_translation: float = 3.0, max_rotation: float = 30.0
) -> Attack:
    """Spatial worst of 10 random rotations + translations per sample, seeded (Engstrom et al. 2019)."""
    return SpatialRandom(trials=trials, seed=seed, max_translation=max_translation, max_rotation=max_rotation)


@register_attack("spatial-foolbox")
def spatial_foolbox(
    *, max_translation: float = 3.0, max_rotation: float = 30.0, num_translations: int = 5, num_rotations: int = 31
) -> Attack:
    """Spatial grid search by foolbox 3 (SpatialAttack); cross-check for `spatial-grid`."""
    return FoolboxSpatial(
        max_translation=max_translation, max_rotation=max_rotation,
        num_translations=num_translations, num_rotations=num_rotations,
    )


@register_attack("spatial-art")
def spatial_art(
    *, max_translation: float = 3.0, max_rotation: float = 30.0, num_translations: int = 5, num_rotations: int = 31
) -> Attack:
    """Spatial by ART: ONE global transform per batch, a different metric (not per-sample)."""
    return ArtSpatial(
        max_translation=max_translation, max_rotation=max_rotation,
        num_translations=num_translations, num_rotations=num_rotations,
    )
