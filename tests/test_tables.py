"""Every table number must follow from the per-model and per-sample records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustbench_win.analysis import tables
from robustbench_win.analysis.inference import MIN_PAIRS

RADII = (0.1, 0.25, 0.5, 1.0)


def sample(model: str = "cnn", k: int = 3, window: str = "none", seed: int = 0, attack: str = "deepfool",
           index: int = 0, attacked: bool = True, success: bool = True, l2: float = math.nan,
           dx: float = math.nan, dy: float = math.nan, angle: float = math.nan) -> dict:
    """One per-sample record in the runner's format."""
    family = "deepfool" if attack.startswith("deepfool") else "spatial"
    return {
        "model_id": f"{model}-k{k}-{window}-s{seed}", "dataset": "toy", "model": model,
        "kernel_size": k, "window": window, "seed": seed, "attack": attack, "family": family,
        "index": index, "label": 1, "clean_pred": 1 if attacked else 2, "attacked": attacked,
        "adv_pred": 3 if success else 1, "success": success and attacked,
        "l2": l2 if attacked else math.nan, "rho": l2 / 10 if attacked else math.nan,
        "iterations": 2, "dx": dx, "dy": dy, "angle": angle,
    }


def random_deepfool(rng: np.random.Generator, k: int, window: str, seed: int, n: int = 40,
                    attack: str = "deepfool") -> list[dict]:
    records = []
    for index in range(n):
        attacked = bool(rng.random() < 0.85)
        success = attacked and bool(rng.random() < 0.8)
        # Failed attacks carry a tiny final-iterate norm: averaging it in would show.
        l2 = float(rng.uniform(0.05, 1.5)) if success else 0.001
        records.append(sample(k=k, window=window, seed=seed, index=index, attack=attack,
                              attacked=attacked, success=success, l2=l2))
    return records


@pytest.fixture
def deepfool_samples() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    records = []
    for k in (3, 5):
        for window in ("none", "hamming"):
            for seed in (0, 1, 2):
                records += random_deepfool(rng, k, window, seed)
    df = pd.DataFrame(records)
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # order must not matter


# --------------------------------------------------------------------------- clean accuracy


def clean_record(k: int, window: str, seed: int, accuracy: float | None, status: str = "ok") -> dict:
    return {"model_id": f"m-k{k}-{window}-s{seed}", "dataset": "toy", "model": "cnn", "kernel_size": k,
            "window": window, "seed": seed, "status": status, "accuracy": accuracy}


def test_clean_table_mean_std_and_paired_difference():
    acc = {("none", 0): 0.90, ("none", 1): 0.92, ("none", 2): 0.91,
           ("hamming", 0): 0.93, ("hamming", 1): 0.92, ("hamming", 2): 0.95}
    records = [clean_record(3, w, s, a) for (w, s), a in acc.items()]
    records.append(clean_record(3, "hann", 0, None, status="failed"))
    table = tables.clean_accuracy_table(pd.DataFrame(records))

    assert len(table) == 1
    row = table.iloc[0]
    none = np.array([90.0, 92.0, 91.0])
    ham = np.array([93.0, 92.0, 95.0])
    assert row["none:acc_mean"] == pytest.approx(none.mean())
    assert row["none:acc_std"] == pytest.approx(none.std(ddof=1))
    assert row["hamming:acc_mean"] == pytest.approx(ham.mean())
    assert row["hamming:diff_mean"] == pytest.approx((ham - none).mean())
    assert row["hamming:diff_std"] == pytest.approx((ham - none).std(ddof=1))
    assert row["none:n_seeds"] == 3 and row["hamming:n_paired"] == 3
    assert "hann:acc_mean" not in table.columns  # the failed model is no accuracy
    assert list(table.columns[:3]) == ["dataset", "model", "kernel_size"]


def test_clean_difference_pairs_by_seed():
    records = [clean_record(5, "none", 0, 0.80), clean_record(5, "none", 1, 0.90),
               clean_record(5, "hamming", 1, 0.95)]  # hamming seed 0 missing
    row = tables.clean_accuracy_table(pd.DataFrame(records)).iloc[0]
    assert row["hamming:diff_mean"] == pytest.approx(5.0)
    assert math.isnan(row["hamming:diff_std"])
    assert row["hamming:n_paired"] == 1
    assert row["none:acc_std"] == pytest.approx(np.std([80.0, 90.0], ddof=1))


# --------------------------------------------------------------------------- DeepFool


def test_deepfool_hand_computed_row():
    rows = [
        sample(index=0, attacked=False, success=False),  # misclassified: never robust
        sample(index=1, success=False, l2=0.01),  # failed attack: not in the norms
        sample(index=2, l2=0.2),
        sample(index=3, l2=0.6),
        sample(index=4, l2=0.25),  # exactly at a radius: fooled within it
    ]
    row = tables.deepfool_table(pd.DataFrame(rows), RADII).iloc[0]
    assert (row["n_evaluated"], row["n_attacked"], row["n_success"], row["n_seeds"]) == (5, 4, 3, 1)
    assert row["success_rate_mean"] == pytest.approx(75.0)
    assert row["median_l2_mean"] == pytest.approx(0.25)
    assert row["mean_l2_mean"] == pytest.approx(0.35)
    assert row["mean_rho_mean"] == pytest.approx(0.035)
    assert row["robust_acc@0.1_mean"] == pytest.approx(80.0)  # 1, 2, 3, 4
    assert row["robust_acc@0.25_mean"] == pytest.approx(40.0)  # 1, 3
    assert row["robust_acc@0.5_mean"] == pytest.approx(40.0)
    assert row["robust_acc@1_mean"] == pytest.approx(20.0)  # 1
    assert math.isnan(row["success_rate_std"])  # one seed
    assert math.isnan(row["wilcoxon_p"]) and row["wilcoxon_note"] == "reference"


def test_deepfool_metrics_recomputed_per_seed(deepfool_samples):
    table = tables.deepfool_table(deepfool_samples, RADII)
    assert len(table) == 4
    assert list(table["window"]) == ["none", "hamming", "none", "hamming"]
    for _, row in table.iterrows():
        mine = deepfool_samples[(deepfool_samples["kernel_size"] == row["kernel_size"])
                                & (deepfool_samples["window"] == row["window"])]
        rates, medians, means, rhos, robust = [], [], [], [], []
        for _, seed_rows in mine.groupby("seed"):
            fooled = seed_rows[seed_rows["success"]]
            rates.append(100 * len(fooled) / seed_rows["attacked"].sum())
            medians.append(np.median(fooled["l2"]))
            means.append(np.mean(fooled["l2"]))
            rhos.append(np.mean(fooled["rho"]))
            ok = seed_rows["attacked"] & (~seed_rows["success"] | (seed_rows["l2"] > 0.5))
            robust.append(100 * ok.sum() / len(seed_rows))
        assert row["n_seeds"] == 3
        assert row["n_attacked"] == mine["attacked"].sum()
        for name, values in [("success_rate", rates), ("median_l2", medians), ("mean_l2", means),
                             ("mean_rho", rhos), ("robust_acc@0.5", robust)]:
            assert row[f"{name}_mean"] == pytest.approx(np.mean(values)), name
            assert row[f"{name}_std"] == pytest.approx(np.std(values, ddof=1)), name


def test_wilcoxon_matches_scipy_on_pairs(deepfool_samples):
    table = tables.deepfool_table(deepfool_samples, RADII)
    row = table[(table["kernel_size"] == 5) & (table["window"] == "hamming")].iloc[0]

    def fooled(window):
        rows = deepfool_samples[(deepfool_samples["kernel_size"] == 5) & (deepfool_samples["window"] == window)
                                & deepfool_samples["attacked"] & deepfool_samples["success"]]
        return {(s, i): l2 for s, i, l2 in zip(rows["seed"], rows["index"], rows["l2"])}

    ham, none = fooled("hamming"), fooled("none")
    keys = sorted(set(ham) & set(none))
    x, y = np.array([ham[k] for k in keys]), np.array([none[k] for k in keys])
    assert row["wilcoxon_n_pairs"] == len(keys) >= MIN_PAIRS
    assert row["wilcoxon_median_diff"] == pytest.approx(np.median(x - y))
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert row["wilcoxon_note"] == ""


def test_wilcoxon_detects_a_consistent_shift():
    rows = []
    for index in range(30):
        rows.append(sample(window="none", index=index, l2=0.3 + 0.01 * index))
        rows.append(sample(window="hamming", index=index, l2=0.5 + 0.01 * index + 0.001 * (index % 3)))
    row = tables.deepfool_table(pd.DataFrame(rows)).iloc[1]
    assert row["window"] == "hamming" and row["wilcoxon_n_pairs"] == 30
    assert row["wilcoxon_median_diff"] > 0.19 and row["wilcoxon_p"] < 1e-4


def test_wilcoxon_too_few_pairs_and_missing_baseline():
    rows = [sample(window=w, index=i, l2=0.1 * (i + 1) + (0.05 if w == "hann" else 0))
            for w in ("none", "hann") for i in range(3)]
    rows.append(sample(k=7, window="hann", index=0, l2=0.3))
    table = tables.deepfool_table(pd.DataFrame(rows))
    few = table[(table["kernel_size"] == 3) & (table["window"] == "hann")].iloc[0]
    assert few["wilcoxon_n_pairs"] == 3 and math.isnan(few["wilcoxon_p"])
    assert few["wilcoxon_note"].startswith("too few pairs")
    assert few["wilcoxon_median_diff"] == pytest.approx(0.05)
    lonely = table[table["kernel_size"] == 7].iloc[0]
    assert math.isnan(lonely["wilcoxon_p"]) and "no baseline" in lonely["wilcoxon_note"]


def test_wilcoxon_pairs_only_samples_both_models_fooled():
    rows = []
    for index in range(10):
        rows.append(sample(window="none", index=index, l2=0.2 + index / 50))
        # index 0: hamming misclassifies; index 1: hamming attack fails.
        rows.append(sample(window="hamming", index=index, attacked=index != 0, success=index != 1,
                           l2=0.3 + index / 40))
    row = tables.deepfool_table(pd.DataFrame(rows)).iloc[1]
    assert row["wilcoxon_n_pairs"] == 8


def test_each_deepfool_attack_gets_its_own_rows(deepfool_samples):
    other = deepfool_samples.assign(attack="deepfool-foolbox")
    table = tables.deepfool_table(pd.concat([other, deepfool_samples]), RADII)
    assert list(table["attack"]) == ["deepfool"] * 4 + ["deepfool-foolbox"] * 4


def test_deepfool_table_ignores_spatial_and_handles_empty():
    spatial = pd.DataFrame([sample(attack="spatial-grid", dx=1, dy=0, angle=5)])
    table = tables.deepfool_table(spatial, RADII)
    assert table.empty and list(table.columns) == tables.deepfool_columns(RADII)


# --------------------------------------------------------------------------- spatial


def test_spatial_table_hand_computed():
    rows = []
    for seed, transforms in [(0, [(1, -2, 5.0), (0, 0, -20.0), None, None]),
                             (1, [(3, 1, 0.0), None, None, None])]:
        for index, t in enumerate(transforms):
            if t is None:
                rows.append(sample(seed=seed, attack="spatial-grid", index=index, success=False))
            else:
                rows.append(sample(seed=seed, attack="spatial-grid", index=index, dx=t[0], dy=t[1], angle=t[2]))
        rows.append(sample(seed=seed, attack="spatial-grid", index=9, attacked=False, success=False))
    # A random-search attack on seed 0 only: its own column group.
    rows.append(sample(seed=0, attack="spatial-random", index=0, dx=2, dy=2, angle=-10.0))
    table = tables.spatial_table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert tables.spatial_attacks(table) == ["spatial-grid", "spatial-random"]
    # Seed 0: 2 of 5 robust (index 9 misclassified); seed 1: 3 of 5.
    assert row["spatial-grid:robust_acc_mean"] == pytest.approx(50.0)
    assert row["spatial-grid:robust_acc_std"] == pytest.approx(np.std([40.0, 60.0], ddof=1))
    # Median |angle|: seed 0 -> 12.5, seed 1 -> 0; median max(|dx|,|dy|): seed 0 -> 1, seed 1 -> 3.
    assert row["spatial-grid:median_abs_angle_mean"] == pytest.approx(6.25)
    assert row["spatial-grid:median_shift_mean"] == pytest.approx(2.0)
    assert row["spatial-grid:median_shift_std"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert (row["spatial-grid:n_seeds"], row["spatial-grid:n_evaluated"], row["spatial-grid:n_fooled"]) == (2, 10, 3)
    assert row["spatial-random:n_seeds"] == 1 and row["spatial-random:robust_acc_mean"] == 0.0


def test_spatial_medians_empty_without_recorded_transform():
    rows = [sample(attack="spatial-foolbox", index=i, success=i < 2) for i in range(4)]
    row = tables.spatial_table(pd.DataFrame(rows)).iloc[0]
    assert row["spatial-foolbox:robust_acc_mean"] == pytest.approx(50.0)
    assert math.isnan(row["spatial-foolbox:median_abs_angle_mean"])
