"""Attack families, declared once: what an attack's per-sample results are and where they go.

Every attack names its family (the ``family`` of :class:`robustbench_win.attacks.base.Attack`)
and the per-sample records store that name. The later stages ask a family's properties here instead of
listing names: best-known norms combine every minimal-norm family
(:func:`minimal_norm_families`), the cross-check holds a gradient-free attack against every
gradient family (:func:`gradient_families`). The built-in families are registered below; an
attack of a new family registers its own next to it::

    DECISION = register_family(AttackFamily("decision", minimal_norm=True, gradient=False))

    class MyAttack(Attack):
        family = DECISION.name
"""

from __future__ import annotations

from dataclasses import dataclass

from robustbench_win.registry import ATTACKS


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


FAMILIES: dict[str, AttackFamily] = {}  # every registered family by name, in registration order


def register_family(family: AttackFamily) -> AttackFamily:
    """Make ``family`` known by its name; registering the same family again changes nothing.

    Raises:
        ValueError: Another family of that name, with other properties, is registered.
    """
    known = FAMILIES.setdefault(family.name, family)
    if known != family:
        raise ValueError(f"attack family {family.name!r} is registered already as {known}; choose another name "
                         f"for {family}")
    return family


# DeepFool and its variants: their own table (the paper's metric), and the best-known norms.
DEEPFOOL = register_family(AttackFamily("deepfool", minimal_norm=True, gradient=True))
# The other minimal-norm L2 attacks (FMN, DDN, ALMA): the best-known norms and the attack-quality table.
MINIMAL_NORM = register_family(AttackFamily("minimal-norm", minimal_norm=True, gradient=True))
# Rotation and translation search (grid or random): the spatial table.
SPATIAL = register_family(AttackFamily("spatial", minimal_norm=False, gradient=False))


def known_families() -> dict[str, AttackFamily]:
    """Every registered family: the built-in ones and those the registered attacks (plug-ins too) declare."""
    ATTACKS.names()  # importing the registered attacks registers the families they declare
    return FAMILIES


def minimal_norm_families() -> tuple[str, ...]:
    """Names of the families whose per-sample ``l2`` is a minimal L2 perturbation, in registration order."""
    return tuple(name for name, family in known_families().items() if family.minimal_norm)


def gradient_families() -> tuple[str, ...]:
    """Names of the minimal-norm families that follow input gradients (what the cross-check compares with)."""
    return tuple(name for name, family in known_families().items() if family.gradient and family.minimal_norm)
