"""Minimal-norm statistics against hand-computed values, failures counted as +inf.

Notation in the hand-written records: a float is a verified adversarial's ||r||_2, ``INF`` a
failed attack on a correctly classified image, ``MISS`` an image the model misclassifies (not
attacked). Best-known norms, medians, areas and optimalities below are derived by hand in
the comments.
"""

from __future__ import annotations

import itertools

import math

import numpy as np
import pandas as pd
from scipy import stats
import pytest
from matplotlib.text import Text

from robustbench_win.report import figures
from robustbench_win.analysis import norms as mn
from robustbench_win.attacks import families

INF = math.inf
MISS = None
FAMILIES = {"deepfool": "deepfool", "fmn": "minimal-norm", "spatial-grid": "spatial"}


def model_records(k: int, window: str, seed: int, norms: dict[str, list[float | None]]) -> list[dict]:
    """Per-sample records of one model, in the runner's format, one list of norms per attack."""
    records = []
    for attack, values in norms.items():
        for index, value in enumerate(values):
            attacked, success = value is not MISS, value is not MISS and math.isfinite(value)
            records.append({
                "model_id": f"cnn-k{k}-{window}-s{seed}", "dataset": "toy", "model": "cnn",
                "kernel_size": k, "window": window, "seed": seed, "attack": attack,
                "family": FAMILIES[attack], "index": index, "label": 1,
                "clean_pred": 1 if attacked else 2, "attacked": attacked,
                "adv_pred": 3 if success else 1, "success": success,
                # A failed attack keeps the small norm of its last iterate: it must not be used.
                "l2": value if success else (0.01 if attacked else math.nan),
                "rho": math.nan, "iterations": 3, "dx": math.nan, "dy": math.nan, "angle": math.nan,
            })
    return records


# Model "none, seed 0" (the running example of this file):
#   deepfool [0.5, INF, 0.3, INF, MISS], fmn [0.4, 0.8, INF, INF, MISS]
#   -> best-known [0.4 (fmn), 0.8 (fmn), 0.3 (deepfool), INF, 0].
NONE_S0 = {"deepfool": [0.5, INF, 0.3, INF, MISS], "fmn": [0.4, 0.8, INF, INF, MISS]}
# none s1: best-known [0.5, 0.2, 0.7, 0.9, 0]
NONE_S1 = {"deepfool": [0.6, 0.2, INF, 0.9, MISS], "fmn": [0.5, 0.25, 0.7, INF, MISS]}
# hamming s0 (failure-heavy): fmn fails everywhere -> best-known [INF, INF, INF, 0.3, 1.0]
HAMMING_S0 = {"deepfool": [INF, INF, INF, 0.3, 1.0], "fmn": [INF, INF, INF, INF, INF]}
# hamming s1: best-known [0.6, 0.4, 0.45, 0, 0.5]
HAMMING_S1 = {"deepfool": [0.7, 0.4, 0.6, MISS, 0.5], "fmn": [0.6, 0.45, 0.45, MISS, INF]}
# k = 5 hamming s0: best-known [0.45, 0.9, 0.6, 0.2, 0.3]
K5_HAMMING_S0 = {"deepfool": [0.5, 0.9, 0.6, 0.2, 0.3], "fmn": [0.45, INF, 0.6, 0.25, 0.35]}


@pytest.fixture
def samples() -> pd.DataFrame:
    records = (model_records(3, "none", 0, NONE_S0) + model_records(3, "none", 1, NONE_S1)
               + model_records(3, "hamming", 0, HAMMING_S0) + model_records(3, "hamming", 1, HAMMING_S1)
               + model_records(5, "hamming", 0, K5_HAMMING_S0)
               + model_records(3, "none", 0, {"spatial-grid": [INF, 1.0, INF, INF, MISS]}))
    frame = pd.DataFrame(records)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)  # order must not matter


def rows_of(frame: pd.DataFrame, **keys) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for name, value in keys.items():
        mask &= (frame[name] == value).to_numpy()
    return frame[mask]


# --------------------------------------------------------------------------- per-sample norms


def test_minimal_norm_attacks_come_from_the_family(samples):
    assert mn.minimal_norm_attacks(samples) == ["deepfool", "fmn"]
    assert mn.minimal_norm_attacks(samples, families=["minimal-norm"]) == ["fmn"]


def test_sample_norm_is_l2_inf_or_zero(samples):
    norms = rows_of(mn.sample_norms(samples), model_id="cnn-k3-none-s0", attack="deepfool")
    assert norms.sort_values("index")["norm"].tolist() == [0.5, INF, 0.3, INF, 0.0]


def test_best_known_norm_is_the_per_sample_minimum(samples):
    best = rows_of(mn.best_known_norms(samples), model_id="cnn-k3-none-s0").sort_values("index")
    assert best["norm"].tolist() == [0.4, 0.8, 0.3, INF, 0.0]
    assert best["best_attack"].tolist() == ["fmn", "fmn", "deepfool", "", ""]
    assert best["n_attacks"].tolist() == [2] * 5
    assert set(best["attack"]) == {mn.BEST_KNOWN}


def test_best_known_norm_matches_numpy_minimum_on_random_records():
    rng = np.random.default_rng(3)
    n = 60
    attacked = rng.random(n) < 0.9
    table = {}
    for attack in ("deepfool", "fmn"):
        values = rng.uniform(0.05, 2.0, n)
        values[rng.random(n) < 0.2] = INF
        table[attack] = values
    records = model_records(7, "hann", 2, {a: [v if ok else MISS for v, ok in zip(vs, attacked)]
                                           for a, vs in table.items()})
    best = mn.best_known_norms(pd.DataFrame(records)).sort_values("index")
    expected = np.where(attacked, np.minimum(table["deepfool"], table["fmn"]), 0.0)
    np.testing.assert_array_equal(best["norm"].to_numpy(), expected)


def test_spatial_attacks_do_not_enter_best_known_norms(samples):
    # spatial-grid "norm" 1.0 at index 1 would not change the minimum; its INF at index 0 would
    # have no effect either, so check the attack list instead.
    best = mn.best_known_norms(samples)
    assert best["n_attacks"].max() == 2


def test_a_new_family_takes_part_by_its_properties(samples, monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))  # registered for this test only
    families.register_family(families.AttackFamily("decision", minimal_norm=True, gradient=False))
    both = pd.concat([samples, samples[samples["attack"] == "fmn"].assign(attack="hsj", family="decision")])
    assert mn.minimal_norm_attacks(both) == ["deepfool", "fmn", "hsj"]
    assert mn.minimal_norm_attacks(both, families=families.gradient_families()) == ["deepfool", "fmn"]
    with pytest.raises(ValueError, match="'decision' is registered already"):
        families.register_family(families.AttackFamily("decision", minimal_norm=False, gradient=False))


def test_named_attack_without_records_is_rejected(samples):
    with pytest.raises(ValueError, match="no per-sample records for attacks \\['ddn'\\]"):
        mn.sample_norms(samples, attacks=["deepfool", "ddn"])


def test_success_without_a_norm_is_rejected(samples):
    broken = samples.copy()
    broken.loc[broken["success"].to_numpy().nonzero()[0][0], "l2"] = math.nan
    with pytest.raises(ValueError, match="success=True but l2 is missing"):
        mn.sample_norms(broken)


def test_attacks_must_agree_on_which_images_were_attacked(samples):
    broken = samples.copy()
    row = rows_of(broken, model_id="cnn-k3-none-s0", attack="fmn", index=4).index[0]
    broken.loc[row, ["attacked", "l2"]] = [True, 0.01]  # fmn says "attacked, failed", deepfool "misclassified"
    with pytest.raises(ValueError, match=r"model cnn-k3-none-s0 has randomized outputs: it classified test image 4 "
                                         r"correctly for some attacks and wrongly for others.*eval\(\)"):
        mn.best_known_norms(broken)


def test_cross_check_convention_leaves_images_without_a_norm_as_nan(samples):
    # The runner's cross-check reads a misclassified image as "no norm" (NaN), not as 0; an image
    # the attacks disagree on (randomized outputs) then has no norm either, instead of an error.
    broken = samples.copy()
    row = rows_of(broken, model_id="cnn-k3-none-s0", attack="fmn", index=0).index[0]
    broken.loc[row, ["attacked", "success", "l2"]] = [False, False, math.nan]  # fmn: "misclassified"
    best = rows_of(mn.best_known_norms(broken, misclassified=math.nan), model_id="cnn-k3-none-s0")
    # deepfool [0.5, INF, 0.3, INF, MISS], fmn now [MISS, 0.8, INF, INF, MISS]
    np.testing.assert_array_equal(best.sort_values("index")["norm"].to_numpy(), [math.nan, 0.8, 0.3, INF, math.nan])


# --------------------------------------------------------------------------- curves, medians, optimality

BEST_S0 = [0.4, 0.8, 0.3, INF, 0.0]  # best-known norms of "none, seed 0"


def test_robust_accuracy_curve_ends():
    # Below every positive norm: the 4 correctly classified images of 5 are robust (clean acc.).
    # Above every finite norm: only the image every attack failed on (1 of 5, the failure share).
    assert mn.robust_accuracy(BEST_S0, [0.1, 1.0, 100.0]).tolist() == [0.8, 0.2, 0.2]
    # Strictly greater: at eps = 0.4 the image with norm 0.4 is no longer robust.
    assert mn.robust_accuracy(BEST_S0, [0.0, 0.35, 0.4]).tolist() == [0.8, 0.6, 0.4]


def test_curve_area_is_the_exact_step_integral():
    # On [0, 0.8]: (0.4 + 0.8 + 0.3 + 0.8 + 0) / 5 = 0.46; on [0, 0.35]: (0.35 * 3 + 0.3) / 5 = 0.27.
    assert mn.curve_area(BEST_S0, 0.8) == pytest.approx(0.46)
    assert mn.curve_area(BEST_S0, 0.35) == pytest.approx(0.27)
    grid = np.linspace(0, 0.8, 800_001)
    assert np.trapezoid(mn.robust_accuracy(BEST_S0, grid), grid) == pytest.approx(0.46, abs=1e-5)


def test_median_counts_failures_as_infinite():
    assert mn.median_norm([0.2, INF, INF]) == INF  # more than half failures
    assert mn.median_norm([0.3, 0.5, INF, INF]) == INF  # exactly half: (0.5 + inf) / 2
    assert mn.median_norm([0.3, 0.4, 0.8, INF]) == pytest.approx(0.6)  # (0.4 + 0.8) / 2
    assert math.isnan(mn.median_norm([]))


def test_optimality_of_best_known_and_of_worse_attacks():
    # d_max = 0.8, clean_acc = 4/5, clean_acc * d_max = 0.64, A* = 0.46 (above).
    best = np.array(BEST_S0)
    assert mn.optimality(best, best) == (1.0, 0.8, "")
    # Twice every norm: [0.8, 1.6, 0.6, inf, 0] -> A = (0.8 + 0.8 + 0.6 + 0.8) / 5 = 0.6,
    # optimality = 1 - (0.6 - 0.46) / (0.64 - 0.46) = 1 - 7/9 = 2/9.
    assert mn.optimality(2 * best, best).value == pytest.approx(2 / 9)
    # DeepFool [0.5, inf, 0.3, inf, 0]: A = 2.4 / 5 = 0.48 -> 1 - 0.02 / 0.18 = 8/9.
    assert mn.optimality([0.5, INF, 0.3, INF, 0.0], best).value == pytest.approx(8 / 9)
    # An attack that fails on every correctly classified image scores 0.
    assert mn.optimality([INF, INF, INF, INF, 0.0], best).value == pytest.approx(0.0)


def test_optimality_degenerate_cases_are_nan_with_a_reason():
    # Nothing fooled, or every image misclassified (all norms 0): no d_max.
    for norms in ([INF, INF, 0.0], [0.0, 0.0]):
        result = mn.optimality(norms, norms)
        assert math.isnan(result.value) and math.isnan(result.d_max) and "d_max undefined" in result.note
    # One success at d_max, one failure: A* = (0.5 + 0.5) / 2 = clean_acc * d_max.
    flat = mn.optimality([0.5, INF], [0.5, INF])
    assert math.isnan(flat.value) and "all-failure" in flat.note
    with pytest.raises(ValueError, match="below its best-known norm"):
        mn.optimality([0.1, INF], [0.5, INF])


# --------------------------------------------------------------------------- paired test


def norm_rows(window: str, per_seed: dict[int, list[float | None]]) -> pd.DataFrame:
    records = [r for seed, norms in per_seed.items() for r in model_records(3, window, seed, {"deepfool": norms})]
    return mn.sample_norms(pd.DataFrame(records))


def test_paired_test_sign_pairs_and_infinite_differences():
    baseline = norm_rows("none", {0: [0.2, 0.3, 0.4, 0.5, 0.6, INF], 1: [0.3, 0.2, 0.1, 0.4, 0.5, 0.6]})
    windowed = norm_rows("hamming", {0: [0.25, 0.37, 0.43, 0.58, MISS, INF], 1: [0.31, 0.22, INF, 0.49, 0.56, 0.7]})
    result = mn.paired_norm_test(windowed, baseline, radius=1.0)
    # Norms capped at 1. Seed 0: index 4 is not attacked by the windowed model -> 5 pairs, index 5
    # fails on both (1 - 1 = 0). Seed 1: 6 pairs, index 2: 1 - 0.1 = 0.9. 11 pairs, differences
    # sorted: 0, .01, .02, .03, .05, .06, .07, .08, .09, .1, .9 -> median 0.06 (> 0: windowed is harder).
    assert result["n_pairs"] == 11 and result["n_both_failed"] == 1
    assert result["median_diff"] == pytest.approx(0.06)
    # The zero is dropped: 10 positive differences, W- = 0, no ties. Exact (permutation over the
    # sign flips, n = 11 <= 13): only all-positive or all-negative signs are as extreme, 2 / 2**10.
    assert result["p"] == pytest.approx(2 / 2**10)
    mirrored = mn.paired_norm_test(baseline, windowed, radius=1.0)
    assert mirrored["median_diff"] == pytest.approx(-0.06) and mirrored["p"] == pytest.approx(result["p"])
    assert result["test"] == mn.PAIRED_TEST


def test_paired_test_with_few_pairs_gives_no_p_value():
    result = mn.paired_norm_test(norm_rows("hamming", {0: [0.3, INF]}), norm_rows("none", {0: [0.2, 0.5]}), radius=1.0)
    assert result["n_pairs"] == 2 and result["median_diff"] == pytest.approx(0.3)  # (0.1 + (1 - 0.5)) / 2
    assert math.isnan(result["p"]) and result["note"] == "too few pairs (2 < 6)"


# --------------------------------------------------------------------------- tables


def test_attack_quality_table_matches_hand_values(samples):
    costs = pd.DataFrame([{"model_id": "cnn-k3-none-s0", "attack": "deepfool", "forward_passes": 40,
                           "backward_passes": 20, "seconds": 1.5}])
    table = mn.attack_quality_table(samples, costs=costs)
    rows = rows_of(table, model_id="cnn-k3-none-s0").set_index("attack")
    assert list(rows.index) == ["deepfool", "fmn", mn.BEST_KNOWN]
    # Attacked images 0..3; successes 2, 2 and 3 (best-known) of 4.
    assert rows["success_rate"].tolist() == [50.0, 50.0, 75.0]
    # deepfool [0.3, 0.5, inf, inf], fmn [0.4, 0.8, inf, inf]: half failures -> inf;
    # best-known [0.3, 0.4, 0.8, inf] -> 0.6.
    assert rows["median_norm"].tolist() == [INF, INF, pytest.approx(0.6)]
    assert rows["mean_l2_successes"].tolist() == pytest.approx([0.4, 0.6, 0.5])
    # Optimality (d_max = 0.8, A* = 0.46, failure area 0.64): deepfool A = 0.48 -> 8/9;
    # fmn [0.4, 0.8, inf, inf, 0] -> A = 2.8 / 5 = 0.56 -> 1 - 0.1 / 0.18 = 4/9; best-known 1.
    assert rows["optimality"].tolist() == pytest.approx([8 / 9, 4 / 9, 1.0])
    assert rows["d_max"].tolist() == pytest.approx([0.8] * 3)
    # 40 forward and 20 backward passes over 4 attacked images; no costs recorded for fmn.
    costs_columns = ["forward_passes_per_sample", "backward_passes_per_sample", "seconds"]
    assert rows.loc["deepfool", costs_columns].tolist() == [10.0, 5.0, 1.5]
    assert rows.loc[["fmn", mn.BEST_KNOWN], "forward_passes_per_sample"].isna().all()


def test_attack_quality_costs_use_their_own_attacked_count(samples):
    costs = pd.DataFrame([{"model_id": "cnn-k3-none-s0", "attack": "deepfool", "forward_passes": 40, "n_attacked": 8}])
    table = mn.attack_quality_table(samples, costs=costs)
    row = rows_of(table, model_id="cnn-k3-none-s0", attack="deepfool").iloc[0]
    assert row["forward_passes_per_sample"] == 5.0 and math.isnan(row["seconds"])


def test_comparison_table_matches_hand_values(samples):
    table = mn.comparison_table(samples, radii=(0.35, 0.75))
    none, hamming = (rows_of(table, kernel_size=3, window=w).iloc[0] for w in ("none", "hamming"))
    assert none["norms_from"] == "deepfool, fmn"
    # AUC range: the largest finite best-known norm of the data set, 1.0 (hamming s0, index 4).
    assert none["robust_auc_upper"] == 1.0
    # none: s0 best [0.4, 0.8, 0.3, inf, 0], s1 best [0.5, 0.2, 0.7, 0.9, 0].
    assert (none["n_seeds"], none["n_evaluated"], none["n_attacked"], none["n_success"]) == (2, 10, 8, 7)
    assert (none["success_rate_mean"], none["success_rate_std"]) == pytest.approx((87.5, 25 / math.sqrt(2)))
    assert (none["median_norm_mean"], none["median_norm_std"]) == pytest.approx((0.6, 0.0))  # 0.6 and 0.6
    assert none["mean_l2_successes_mean"] == pytest.approx((0.5 + 0.575) / 2)
    # robust acc. at 0.35: 3/5 and 3/5; at 0.75: {0.8, inf} 2/5 and {0.9} 1/5.
    assert (none["robust_acc@0.35_mean"], none["robust_acc@0.35_std"]) == pytest.approx((60.0, 0.0))
    assert (none["robust_acc@0.75_mean"], none["robust_acc@0.75_std"]) == pytest.approx((30.0, 20 / math.sqrt(2)))
    # AUC on [0, 1]: (0.4 + 0.8 + 0.3 + 1 + 0) / 5 = 0.5 and (0.5 + 0.2 + 0.7 + 0.9) / 5 = 0.46.
    assert (none["robust_auc_mean"], none["robust_auc_std"]) == pytest.approx((0.48, 0.04 / math.sqrt(2)))
    # hamming: s0 best [inf, inf, inf, 0.3, 1.0] (3 of 5 failed: median inf), s1 [0.6, 0.4, 0.45, 0, 0.5].
    assert hamming["median_norm_mean"] == INF and math.isnan(hamming["median_norm_std"])
    assert hamming["success_rate_mean"] == pytest.approx(70.0)  # 2/5 and 4/4
    assert hamming["robust_acc@0.35_mean"] == pytest.approx(80.0)  # 4/5 and 4/5
    assert hamming["robust_auc_mean"] == pytest.approx((0.86 + 0.39) / 2)  # 4.3/5 and 1.95/5


def test_comparison_table_paired_tests_against_both_baselines(samples):
    table = mn.comparison_table(samples, radii=(0.35, 2.0))  # norms capped at 2.0 in the paired tests
    same_k, k3 = mn.baseline_group("none", None), mn.baseline_group("none", 3)
    none = rows_of(table, kernel_size=3, window="none").iloc[0]
    assert none[f"{same_k}:note"] == "reference" and none[f"{k3}:note"] == "reference"
    hamming = rows_of(table, kernel_size=3, window="hamming").iloc[0]
    # Pairs attacked by both, capped hamming - capped none: s0 indices 0..3: 2 - .4, 2 - .8, 2 - .3,
    # .3 - 2; s1 indices 0..2: 0.1, 0.2, -0.25. Sorted: -1.7, -.25, .1, .2, 1.2, 1.6, 1.7 -> median 0.2.
    diff = [1.6, 1.2, 1.7, -1.7, 0.1, 0.2, -0.25]
    assert hamming[f"{same_k}:n_pairs"] == 7 and hamming[f"{same_k}:n_both_failed"] == 0
    assert hamming[f"{same_k}:median_diff"] == pytest.approx(0.2)
    # Ranks of |d|: .1 -> 1, .2 -> 2, .25 -> 3, 1.2 -> 4, 1.6 -> 5, the two 1.7 tie at 6.5; W- = 3 + 6.5.
    # With ties, n = 7 <= 13: exact permutation p over the 2^7 sign flips, counted here by brute force.
    ranks = [5, 4, 6.5, 6.5, 1, 2, 3]
    assert sorted(ranks) == sorted(stats.rankdata(np.abs(diff)))
    w_minus = 6.5 + 3
    flips = [sum(r for r, neg in zip(ranks, signs) if neg) for signs in itertools.product([0, 1], repeat=7)]
    expected = min(1.0, 2 * sum(f <= w_minus + 1e-9 for f in flips) / len(flips))
    assert hamming[f"{same_k}:p"] == pytest.approx(expected)
    assert hamming[f"{k3}:p"] == hamming[f"{same_k}:p"]  # at k = 3 both baselines are the same model
    k5 = rows_of(table, kernel_size=5, window="hamming").iloc[0]
    assert k5[f"{same_k}:note"] == "no none model with k=5"
    # vs none k = 3, seed 0 only: [0.45, 0.9, 0.6, 0.2] - [0.4, 0.8, 0.3, 2] = .05, .1, .3, -1.8.
    assert k5[f"{k3}:n_pairs"] == 4 and k5[f"{k3}:median_diff"] == pytest.approx(0.075)
    assert k5[f"{k3}:note"] == "too few pairs (4 < 6)"


def test_deepfool_only_numbers_use_the_same_functions(samples):
    table = mn.comparison_table(samples, attacks=["deepfool"], radii=())
    none = rows_of(table, kernel_size=3, window="none").iloc[0]
    assert none["norms_from"] == "deepfool"
    # s0 deepfool [0.5, inf, 0.3, inf] -> inf; s1 [0.6, 0.2, inf, 0.9] -> (0.6 + 0.9) / 2.
    assert none["median_norm_mean"] == INF
    assert none["success_rate_mean"] == pytest.approx((50 + 75) / 2)


def test_clean_records_add_test_split_accuracy(samples):
    clean = pd.DataFrame([
        {"dataset": "toy", "model": "cnn", "kernel_size": 3, "window": "none", "seed": s, "status": "ok",
         "accuracy": a, "n_test": 100, "n_correct": int(a * 100)} for s, a in ((0, 0.9), (1, 0.8))])
    none = rows_of(mn.comparison_table(samples, clean=clean), kernel_size=3, window="none").iloc[0]
    assert none["clean_acc_test_mean"] == pytest.approx(85.0)


# --------------------------------------------------------------------------- curves and figure


def test_security_curves_per_model(samples):
    curves = mn.security_curves(samples, eps=[0.0, 0.1, 0.35, 1.0, 2.0])
    curve = rows_of(curves, model_id="cnn-k3-none-s0").sort_values("eps")
    # best [0.4, 0.8, 0.3, inf, 0]: 4/5 at 0 and 0.1, 3/5 at 0.35, failure share 1/5 at and past 1.0.
    assert curve["robust_acc"].tolist() == pytest.approx([80.0, 80.0, 60.0, 20.0, 20.0])
    assert len(curves) == 5 * 5  # five models


def test_security_curve_figure_keeps_every_text_inside(samples, tmp_path):
    curves = mn.security_curves(samples)
    fig = figures.draw_security_curves(curves)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert any("k = 5" in t.get_text() for t in texts) and any(t.get_text() == "hamming (2 seeds)" for t in texts)
    inside = fig.bbox.padded(1)  # one pixel of rounding

    def assert_inside(box, what):
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, what

    texts = [t for t in fig.findobj(Text) if t.get_text() == fig.get_suptitle()]
    texts += [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    texts += [t for ax in fig.axes for t in ax.get_legend().get_texts() + [ax.get_legend().get_title()]]
    for text in texts:
        assert_inside(text.get_window_extent(renderer), text.get_text())
    for ax in fig.axes:  # the tick labels actually drawn (within the view limits)
        for axis in (ax.xaxis, ax.yaxis):
            assert_inside(axis.get_tightbbox(renderer), f"tick labels of {ax.get_title()}")
    path = figures.plot_security_curves(curves, tmp_path / "figures" / "security.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
