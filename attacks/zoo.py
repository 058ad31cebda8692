"""Built-in attacks, registered by name in :data:`robustbench_win.registry.ATTACKS`.

Each factory passes its keyword-only hyper-parameters on to an
:class:`~robustbench_win.attacks.base.Attack` class, which holds the DESIGN.md defaults and
validates them; the first docstring line is what ``robustbench-win list attacks`` shows.
"""

from __future__ import annotations

from typing import Any

from robustbench_win.attacks.alma import ALMA
from robustbench_win.attacks.art_backend import ArtDeepFool, ArtSpatial
from robustbench_win.attacks.base import Attack
from robustbench_win.attacks.ddn import DDN
from robustbench_win.attacks.deepfool import DeepFool, ProjectedDeepFool
from robustbench_win.attacks.fmn import FMN
from robustbench_win.attacks.foolbox_backend import FoolboxDDN, FoolboxDeepFool, FoolboxFMN, FoolboxSpatial
from robustbench_win.attacks.minimal_norm_loop import check_bool
from robustbench_win.attacks.spatial import SpatialGrid, SpatialRandom
from robustbench_win.attacks.superdeepfool import SuperDeepFool
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
def deepfool(*, project: bool = False, **params: Any) -> Attack:
    """DeepFool L2 (Moosavi-Dezfooli et al. 2016), batched; 50 steps, top-10 classes, overshoot 0.02."""
    attack = ProjectedDeepFool if check_bool("project", project) else DeepFool
    return attack(**params)


@register_attack("deepfool-projected")
def deepfool_projected(**params: Any) -> Attack:
    """DeepFool L2 that stays in [0, 1] (projected perturbation, feasible steps): does not stall on saturated pixels."""
    return ProjectedDeepFool(**params)


@register_attack("superdeepfool")
def superdeepfool(**params: Any) -> Attack:
    """SuperDeepFool L2 (Abdollahpourrostam et al. 2023): DeepFool alternated with projections onto the boundary normal."""
    return SuperDeepFool(**params)


@register_attack("fmn")
def fmn(**params: Any) -> Attack:
    """Fast Minimum-Norm L2 attack (Pintor et al. 2021) from projected DeepFool's point, box-aware steps."""
    return FMN(**{"steps": FMN_STEPS, "patience": FMN_PATIENCE, **params})


@register_attack("ddn")
def ddn(**params: Any) -> Attack:
    """Decoupled Direction and Norm L2 attack (Rony et al. 2019) from projected DeepFool's point."""
    return DDN(**{"steps": DDN_STEPS, "patience": DDN_PATIENCE, **params})


@register_attack("alma")
def alma(**params: Any) -> Attack:
    """Augmented Lagrangian L2 attack ALMA (Rony et al. 2021), penalty P2, from the clean image."""
    return ALMA(**params)


@register_attack("fmn-foolbox")
def fmn_foolbox(**params: Any) -> Attack:
    """FMN L2 by foolbox 3 (L2FMNAttack, whose L2 projection is a no-op); peer for `fmn`."""
    return FoolboxFMN(**{"steps": FMN_STEPS, **params})


@register_attack("ddn-foolbox")
def ddn_foolbox(**params: Any) -> Attack:
    """DDN L2 by foolbox 3 (DDNAttack), the reference for `ddn`."""
    return FoolboxDDN(**{"steps": DDN_STEPS, **params})


@register_attack("deepfool-foolbox")
def deepfool_foolbox(**params: Any) -> Attack:
    """DeepFool L2 by foolbox 3 (L2DeepFoolAttack), the reference for `deepfool`."""
    return FoolboxDeepFool(**params)


@register_attack("deepfool-art")
def deepfool_art(**params: Any) -> Attack:
    """DeepFool by ART (projected steps, overshoot applied once at the end); cross-check for `deepfool`."""
    return ArtDeepFool(**params)


@register_attack("spatial-grid")
def spatial_grid(**params: Any) -> Attack:
    """Spatial worst case per sample over a rotation x translation grid, smallest transform first (Engstrom et al. 2019)."""
    return SpatialGrid(**params)


@register_attack("spatial-random")
def spatial_random(**params: Any) -> Attack:
    """Spatial worst of 10 random rotations + translations per sample, seeded (Engstrom et al. 2019)."""
    return SpatialRandom(**params)


@register_attack("spatial-foolbox")
def spatial_foolbox(**params: Any) -> Attack:
    """Spatial grid search by foolbox 3 (SpatialAttack); cross-check for `spatial-grid`."""
    return FoolboxSpatial(**params)


@register_attack("spatial-art")
def spatial_art(**params: Any) -> Attack:
    """Spatial by ART: ONE global transform per batch, a different metric (not per-sample)."""
    return ArtSpatial(**params)
