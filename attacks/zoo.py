"""Built-in attacks, registered by name in :data:`robustbench_win.registry.ATTACKS`.

Each factory takes keyword-only hyper-parameters with the DESIGN.md defaults and returns an
:class:`~robustbench_win.attacks.base.Attack`; the first docstring line is what ``robustbench-win list
attacks`` shows.
"""

from __future__ import annotations

from robustbench_win.attacks.art_backend import ArtDeepFool, ArtSpatial
from robustbench_win.attacks.base import Attack
from robustbench_win.attacks.ddn import DDN
from robustbench_win.attacks.deepfool import DeepFool, ProjectedDeepFool
from robustbench_win.attacks.fmn import FMN
from robustbench_win.attacks.foolbox_backend import FoolboxDDN, FoolboxDeepFool, FoolboxFMN, FoolboxSpatial
from robustbench_win.attacks.minimal_norm import check_bool
from robustbench_win.attacks.spatial import SpatialGrid, SpatialRandom
from robustbench_win.registry import register_attack

# Defaults of the minimal-norm attacks, chosen with benchmarks/bench_minimal_norm.py (norms
# against steps): per sample within 0.5 % of a 500-step run without early exit, at ~180
# forward and backward passes per digit. A sample leaves once its best norm has not improved
# for half the schedule.
FMN_STEPS = 200  # gradient steps per sample at most
FMN_PATIENCE = 100  # steps without improvement after which a fooled sample is done (0: never)
DDN_STEPS = 200
DDN_PATIENCE = 100


@register_attack("deepfool")
def deepfool(*, steps: int = 50, candidates: int = 10, overshoot: float = 0.02, project: bool = False) -> Attack:
    """DeepFool L2 (Moosavi-Dezfooli et al. 2016), batched; 50 steps, top-10 classes, overshoot 0.02."""
    attack = ProjectedDeepFool if check_bool("project", project) else DeepFool
    return attack(steps=steps, candidates=candidates, overshoot=overshoot)


@register_attack("deepfool-projected")
def deepfool_projected(*, steps: int = 50, candidates: int = 10, overshoot: float = 0.02) -> Attack:
    """DeepFool L2 that stays in [0, 1] (projected perturbation, feasible steps): does not stall on saturated pixels."""
    return ProjectedDeepFool(steps=steps, candidates=candidates, overshoot=overshoot)


@register_attack("fmn")
def fmn(
    *,
    steps: int = FMN_STEPS,
    alpha_init: float = 1.0,
    alpha_final: float | None = None,
    gamma_init: float = 0.05,
    gamma_final: float = 0.001,
    overshoot: float = 0.02,
    box_aware: bool = True,
    init: str = "deepfool",
    patience: int = FMN_PATIENCE,
    tolerance: float = 1e-3,
) -> Attack:
    """Fast Minimum-Norm L2 attack (Pintor et al. 2021) from projected DeepFool's point, box-aware steps."""
    return FMN(
        steps=steps, alpha_init=alpha_init, alpha_final=alpha_final, gamma_init=gamma_init, gamma_final=gamma_final,
        overshoot=overshoot, box_aware=box_aware, init=init, patience=patience, tolerance=tolerance,
    )


@register_attack("ddn")
def ddn(
    *,
    steps: int = DDN_STEPS,
    gamma: float = 0.05,
    initial_norm: float = 1.0,
    alpha_init: float = 1.0,
    alpha_final: float = 0.01,
    box_aware: bool = False,
    init: str = "deepfool",
    patience: int = DDN_PATIENCE,
    tolerance: float = 1e-3,
) -> Attack:
    """Decoupled Direction and Norm L2 attack (Rony et al. 2019) from projected DeepFool's point."""
    return DDN(
        steps=steps, gamma=gamma, initial_norm=initial_norm, alpha_init=alpha_init, alpha_final=alpha_final,
        box_aware=box_aware, init=init, patience=patience, tolerance=tolerance,
    )


@register_attack("fmn-foolbox")
def fmn_foolbox(
    *, steps: int = FMN_STEPS, alpha_init: float = 1.0, alpha_final: float | None = None, gamma_init: float = 0.05
) -> Attack:
    """FMN L2 by foolbox 3 (L2FMNAttack, whose L2 projection is a no-op); peer for `fmn`."""
    return FoolboxFMN(steps=steps, alpha_init=alpha_init, alpha_final=alpha_final, gamma_init=gamma_init)


@register_attack("ddn-foolbox")
def ddn_foolbox(*, steps: int = DDN_STEPS, gamma: float = 0.05, initial_norm: float = 1.0) -> Attack:
    """DDN L2 by foolbox 3 (DDNAttack), the reference for `ddn`."""
    return FoolboxDDN(steps=steps, gamma=gamma, initial_norm=initial_norm)


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
