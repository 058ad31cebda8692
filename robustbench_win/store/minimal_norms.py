"""Per-sample minimal norms of stored attack records, and the best-known norm of each image.

One definition for the two stages that need it: the runner's cross-check compares a
gradient-free attack with the best-known norms of a model's stored gradient attacks, and the
analysis builds every minimal-norm table and claim on them
(:mod:`robustbench_win.analysis.norms` states the definitions).

- **Per-sample norm** of a minimal-norm L2 attack on one test image: ``||r||_2`` (column
  ``l2``) if the attack succeeded (verified), ``+inf`` if the image was attacked and the attack
  failed, and the ``misclassified`` convention if the image was not attacked because the model
  misclassifies it already: 0 (robust at no radius, as robust accuracy counts it) or NaN (no
  norm at all, as the cross-check reads it).
- **Best-known norm** of an image (per model and test index): the smallest per-sample norm over
  the attacks run on it (``+inf`` if none succeeded).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

from robustbench_win.attacks.families import minimal_norm_families
from robustbench_win.ordering import attack_order, ordered, sort_records
from robustbench_win.schema import MODEL_COLUMNS

BEST_KNOWN = "best-known"  # the ``attack`` value of best-known norm rows
NORM_COLUMNS = [*MODEL_COLUMNS, "attack", "index", "attacked", "success", "norm"]
_REQUIRED = [*MODEL_COLUMNS, "attack", "family", "index", "attacked", "success", "l2"]


def minimal_norm_attacks(samples: pd.DataFrame, families: Collection[str] | None = None) -> list[str]:
    """Names of the attacks in ``samples`` whose ``family`` is a minimal-norm family.

    Args:
        samples: Per-sample attack records (columns ``attack`` and ``family``).
        families: Families that count; default: every minimal-norm family
            (:func:`~robustbench_win.attacks.families.minimal_norm_families`).

    Returns:
        Attack names in display order.
    """
    families = minimal_norm_families() if families is None else families
    chosen = samples.loc[samples["family"].astype(str).isin(set(families)), "attack"]
    return ordered(chosen.astype(str), attack_order())


def resolve_attacks(samples: pd.DataFrame, attacks: Iterable[str] | None) -> list[str]:
    """The attacks norms are taken over: ``attacks`` (each must have records), by default every
    minimal-norm attack of ``samples`` (:func:`minimal_norm_attacks`).

    Raises:
        ValueError: A named attack has no per-sample records.
    """
    if attacks is None:
        return minimal_norm_attacks(samples)
    chosen = list(dict.fromkeys(str(a) for a in attacks))
    unknown = sorted(set(chosen) - set(samples["attack"].astype(str)))
    if unknown:
        raise ValueError(f"no per-sample records for attacks {unknown}; recorded attacks: "
                         f"{ordered(samples['attack'].astype(str), attack_order())}")
    return chosen


def _check_columns(samples: pd.DataFrame) -> None:
    missing = [c for c in _REQUIRED if c not in samples.columns]
    if missing:
        raise ValueError(f"per-sample records lack columns {missing}; expected at least {_REQUIRED}, "
                         f"got {list(samples.columns)}")
    for name in ("attacked", "success"):
        if not pd.api.types.is_bool_dtype(samples[name]):
            raise ValueError(f"column '{name}' must hold booleans, got dtype {samples[name].dtype} "
                             f"(read run folders with robustbench_win.store.run_folder.RunFolder.collect)")


def _check_records(rows: pd.DataFrame) -> None:
    """A success needs an attacked image and a finite, non-negative ``l2``."""
    bad_flag = rows["success"] & ~rows["attacked"]
    l2 = pd.to_numeric(rows["l2"], errors="coerce")
    bad_norm = rows["success"] & ~(l2 >= 0)  # NaN fails this comparison too
    for bad, what in ((bad_flag, "success=True but attacked=False"),
                      (bad_norm, "success=True but l2 is missing, negative or not a number")):
        if bad.any():
            first = rows[bad].iloc[0]
            raise ValueError(f"sample {first['index']} of model {first['model_id']}, attack {first['attack']}: "
                             f"{what}; every success must be a verified adversarial with its L2 norm")


def sample_norms(samples: pd.DataFrame, *, attacks: Iterable[str] | None = None,
                 misclassified: float = 0.0) -> pd.DataFrame:
    """Per-sample norms with failures as +inf: ``l2`` if fooled, +inf if attacked and not, else ``misclassified``.

    Args:
        samples: Per-sample attack records (columns of :data:`~robustbench_win.store.records.ATTACK_RECORDS`,
            booleans parsed).
        attacks: Attacks to keep; default: every attack of a
            :func:`~robustbench_win.attacks.families.minimal_norm_families` family.
        misclassified: The norm of an image the model misclassifies (not attacked): 0, robust
            at no radius (the analysis), or NaN, no norm (the cross-check).

    Returns:
        Columns :data:`NORM_COLUMNS`, one row per (model, attack, test index).

    Raises:
        ValueError: Missing columns, a named attack without records, or a success without a
            valid ``l2``.
    """
    _check_columns(samples)
    chosen = resolve_attacks(samples, attacks)
    rows = samples[samples["attack"].astype(str).isin(chosen)]
    _check_records(rows)
    l2 = pd.to_numeric(rows["l2"], errors="coerce").to_numpy(dtype=float)
    attacked, success = rows["attacked"].to_numpy(), rows["success"].to_numpy()
    norms = rows[NORM_COLUMNS[:-1]].copy()
    norms["norm"] = np.where(attacked, np.where(success, l2, math.inf), misclassified)
    return norms.reset_index(drop=True)


def _refuse_randomized(norms: pd.DataFrame, keys: list[str]) -> None:
    """Attacks must agree on whether an image was attacked: the clean prediction cannot depend on the attack."""
    verdicts = norms.groupby(keys, dropna=False)["attacked"].nunique()
    conflicts = verdicts[verdicts > 1]
    if len(conflicts):
        first = dict(zip(keys, conflicts.index[0]))
        raise ValueError(
            f"model {first['model_id']} has randomized outputs: it classified test image {first['index']} correctly "
            f"for some attacks and wrongly for others, so its predictions change from one forward pass to the next "
            f"and its norms are meaningless. Evaluate it in eval() with randomness disabled (dropout, random "
            f"transforms), or register an expectation-over-transformation variant; the randomized-outputs check "
            f"refuses such a model before its attacks unless the suite's [checks] switches it off")


def best_known_norms(samples: pd.DataFrame, *, attacks: Iterable[str] | None = None,
                     misclassified: float = 0.0) -> pd.DataFrame:
    """Best-known norm per model and test index: the smallest per-sample norm over ``attacks``.

    ``norm* = min over attacks a of norm_a`` (+inf when every attack failed, ``misclassified``
    when the model misclassifies the image). Ties go to the attack listed first.

    Args:
        samples: Per-sample attack records.
        attacks: Minimal-norm attacks to combine; default: every attack of a
            :func:`~robustbench_win.attacks.families.minimal_norm_families` family.
        misclassified: The norm of an image the model misclassifies: 0 (the default), robust at
            no radius, as every table and claim counts it; or NaN, no norm, as the cross-check
            reads it. With 0, attacks that disagree on whether an image was attacked raise; with
            NaN such an image has no best-known norm either (it was not attacked by all of them).

    Returns:
        Columns :data:`NORM_COLUMNS` (``attack`` is :data:`BEST_KNOWN`, ``success`` is "some
        attack succeeded") plus ``best_attack`` (the attack that found the norm, "" if none)
        and ``n_attacks`` (how many attacks were run on the image).

    Raises:
        ValueError: As :func:`sample_norms`, or when attacks disagree on whether an image
            was attacked (the model's clean prediction must not depend on the attack) and
            ``misclassified`` is not NaN.
    """
    norms = sample_norms(samples, attacks=attacks, misclassified=misclassified)
    keys = [*MODEL_COLUMNS, "index"]
    if math.isnan(misclassified):
        by_all = norms.groupby(keys, dropna=False)["attacked"].transform("all")
        norms = norms.assign(attacked=by_all, norm=norms["norm"].where(by_all))
    else:
        _refuse_randomized(norms, keys)
    order = {name: i for i, name in enumerate(resolve_attacks(samples, attacks))}
    ranked = norms.assign(_order=norms["attack"].map(order)).sort_values(["norm", "_order"], kind="mergesort")
    best = ranked.drop_duplicates(keys, keep="first").drop(columns="_order")
    best["success"] = best["attacked"] & np.isfinite(best["norm"])
    best["best_attack"] = best["attack"].where(best["success"], "")
    best["attack"] = BEST_KNOWN
    counts = norms.groupby(keys, dropna=False).size().rename("n_attacks").reset_index()
    best = best.merge(counts, on=keys, how="left")
    return sort_records(best, [*MODEL_COLUMNS, "index"])
