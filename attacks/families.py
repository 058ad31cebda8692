"""Attack families, declared once: what an attack's per-sample results are and where they go.

Every attack names its family (:attr:`robustbench_win.attacks.base.Attack.family`) and the
per-sample records store that name. The later stages ask a family's properties here instead of
listing names: best-known norms combine every minimal-norm family, the cross-check holds a
gradient-free attack against every gradient family. An attack of a new family is its module and
one more :class:`AttackFamily` in :data:`FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttackFamily:
    """A kind of attack, by what its per-sample results mean.

    Attributes:
        name: The name attacks declare and records store (the ``family`` column).
        minimal_norm: Its per-sample ``l2`` is a minimal L2 perturbation, so it enters the
            best-known norms (and the minimal-norm and attack-quality tables).
        gradient: It follows the model's input gradients, so masked gradients can fool it
            (what the cross-check tests with a gradient-free attack).
    """

    name: str
    minimal_norm: bool
    gradient: bool


# DeepFool and its variants: their own table (the paper's metric), and the best-known norms.
DEEPFOOL = AttackFamily("deepfool", minimal_norm=True, gradient=True)
# The other minimal-norm L2 attacks (FMN, DDN, ALMA): the best-known norms and the attack-quality table.
MINIMAL_NORM = AttackFamily("minimal-norm", minimal_norm=True, gradient=True)
# Rotation and translation search (grid or random): the spatial table.
SPATIAL = AttackFamily("spatial", minimal_norm=False, gradient=False)

FAMILIES: dict[str, AttackFamily] = {family.name: family for family in (DEEPFOOL, MINIMAL_NORM, SPATIAL)}
# Families whose per-sample ``l2`` is a minimal L2 perturbation.
MINIMAL_NORM_FAMILIES: tuple[str, ...] = tuple(name for name, family in FAMILIES.items() if family.minimal_norm)
# Families that follow input gradients: the cross-check compares with their best-known norms.
GRADIENT_FAMILIES: tuple[str, ...] = tuple(name for name, family in FAMILIES.items() if family.gradient)
