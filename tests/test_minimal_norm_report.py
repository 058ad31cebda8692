"""The minimal-norm tables end to end: hand-written records with failures -> build_report -> CSV.

Two models (k = 3, windows none and hamming, seed 0), four test images each, attacked by
``deepfool`` (family deepfool) and ``fmn`` (family minimal-norm). ``INF`` marks an attacked
image the attack failed on, ``MISS`` an image the model misclassifies (not attacked)::

    model     image:  0     1     2     3
    none   deepfool  0.5   INF   INF   MISS
           fmn       0.4   0.9   INF   MISS
           best      0.4   0.9   INF   0
    hamming deepfool 0.7   0.8   INF   INF
           fmn       0.6   INF   INF   INF
           best      0.6   0.8   INF   INF

Every expected number below is derived by hand from this table in the comments.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustbench_win.report import build as report
from robustbench_win.store.records import ATTACK_RECORDS, CLEAN, COSTS, AttackCost, CleanResult, ModelIdentity
from robustbench_win.store.run_folder import RunFolder

INF, MISS = math.inf, None
NORMS = {
    ("none", "deepfool"): [0.5, INF, INF, MISS],
    ("none", "fmn"): [0.4, 0.9, INF, MISS],
    ("hamming", "deepfool"): [0.7, 0.8, INF, INF],
    ("hamming", "fmn"): [0.6, INF, INF, INF],
}
FAMILY = {"deepfool": "deepfool", "fmn": "minimal-norm"}
ACCURACY = {"none": 0.75, "hamming": 1.0}
# (window, attack) -> forward passes, backward passes, seconds; both models attack 3 and 4 images.
COSTS_GIVEN = {("none", "deepfool"): (12, 60, 0.3), ("none", "fmn"): (30, 15, 1.5),
               ("hamming", "deepfool"): (20, 80, 0.4), ("hamming", "fmn"): (40, 40, 2.0)}


def identity(window: str) -> ModelIdentity:
    return ModelIdentity(f"cnn_k3_{window}_s0", "toy", "cnn", 3, window, 0)


def rows(window: str, attack: str) -> list[dict]:
    out = []
    for index, norm in enumerate(NORMS[(window, attack)]):
        attacked, success = norm is not MISS, norm is not MISS and math.isfinite(norm)
        out.append({"index": index, "label": index, "clean_pred": index if attacked else index + 1,
                    "attacked": attacked, "adv_pred": (index + 1 if success else index) if attacked else None,
                    "success": success, "l2": norm if success else (0.01 if attacked else math.nan),
                    "rho": norm / 10 if success else math.nan, "iterations": 5 if attacked else None})
    return out


def write_runs(out: Path) -> RunFolder:
    """The records above in the runner's per-model layout, costs included."""
    folder = RunFolder(out)
    folder.claim('name = "toy"\n')
    folder.start({"suite_name": "toy", "dataset_name": "Toy digits", "radii": [0.5, 1.0],
                  "attacks": {"deepfool": {"family": "deepfool", "description": "DeepFool (hand-written)."},
                              "fmn": {"family": "minimal-norm", "description": "FMN (hand-written)."}}})
    for window in ("none", "hamming"):
        who = identity(window)
        n_attacked = sum(n is not MISS for n in NORMS[(window, "fmn")])
        folder.write_clean(who, CleanResult("ok", None, ACCURACY[window], 4, int(4 * ACCURACY[window]), 0.0, ""))
        for attack in ("deepfool", "fmn"):
            forward, backward, seconds = COSTS_GIVEN[(window, attack)]
            folder.write_cost(who, AttackCost(attack, n_attacked, forward, backward, seconds))
            folder.write_step(ATTACK_RECORDS, who, {"attack": attack, "family": FAMILY[attack]}, rows(window, attack))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mn-run")
    write_runs(out)
    report.build_report(out)
    return out


def read_table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / f"table_{name}.csv")


def test_comparison_uses_best_known_norms_with_failures_as_infinity(run_dir: Path) -> None:
    table = read_table(run_dir, "minimal_norm").set_index("window")
    none, hamming = table.loc["none"], table.loc["hamming"]
    assert none["norms_from"] == "deepfool, fmn"
    # none: best [0.4, 0.9, inf, 0]; attacked 3, fooled 2; median of [0.4, 0.9, inf] = 0.9.
    assert (none["n_attacked"], none["n_success"]) == (3, 2)
    assert none["success_rate_mean"] == pytest.approx(200 / 3)
    assert none["median_norm_mean"] == pytest.approx(0.9)
    assert none["mean_l2_successes_mean"] == pytest.approx(0.65)
    # hamming: best [0.6, 0.8, inf, inf]: median (0.8 + inf) / 2 = inf, never dropped.
    assert hamming["median_norm_mean"] == math.inf
    assert hamming["mean_l2_successes_mean"] == pytest.approx(0.7)
    # Robust accuracy over all 4 images: none > 0.5: {0.9, inf} = 50 %, > 1.0: {inf} = 25 %;
    # hamming > 0.5: all 4 = 100 %, > 1.0: {inf, inf} = 50 %.
    assert [none["robust_acc@0.5_mean"], none["robust_acc@1_mean"]] == pytest.approx([50.0, 25.0])
    assert [hamming["robust_acc@0.5_mean"], hamming["robust_acc@1_mean"]] == pytest.approx([100.0, 50.0])
    # AUC on [0, 0.9] (largest finite best-known norm): mean of min(norm, 0.9).
    assert table["robust_auc_upper"].tolist() == pytest.approx([0.9, 0.9])
    assert none["robust_auc_mean"] == pytest.approx((0.4 + 0.9 + 0.9 + 0.0) / 4)
    assert hamming["robust_auc_mean"] == pytest.approx((0.6 + 0.8 + 0.9 + 0.9) / 4)
    assert hamming["clean_acc_test_mean"] == pytest.approx(100.0)


def test_paired_comparison_uses_the_same_images_for_both_sides(run_dir: Path) -> None:
    hamming = read_table(run_dir, "minimal_norm").set_index("window").loc["hamming"]
    # Images both attack: 0, 1, 2 (none misclassifies 3). Differences hamming - none:
    # 0.6 - 0.4 = +0.2, 0.8 - 0.9 = -0.1, inf vs inf = 0 (both failed): median 0.
    for group in ("vs none (same k)", "vs none (k=3)"):
        assert hamming[f"{group}:n_pairs"] == 3 and hamming[f"{group}:n_both_failed"] == 1
        assert hamming[f"{group}:median_diff"] == pytest.approx(0.0)
        assert math.isnan(hamming[f"{group}:p"]) and hamming[f"{group}:note"] == "too few pairs (3 < 6)"


def test_attack_quality_from_hand_computed_optimality_and_costs(run_dir: Path) -> None:
    table = read_table(run_dir, "attack_quality").set_index(["window", "attack"])
    # none: d_max 0.9, clean_acc 3/4, failure area 0.675, A* = 0.55; deepfool
    # A = (0.5 + 0.9 + 0.9 + 0) / 4 = 0.575 -> 1 - 0.025 / 0.125 = 0.8.
    assert table.loc[("none", "deepfool"), "optimality"] == pytest.approx(0.8)
    # hamming: d_max 0.8, clean_acc 1, failure area 0.8, A* = 0.75; deepfool A = 0.775 -> 0.5.
    assert table.loc[("hamming", "deepfool"), "optimality"] == pytest.approx(0.5)
    assert table.loc[("none", "best-known"), "optimality"] == pytest.approx(1.0)
    assert table.loc[("none", "deepfool"), "median_norm"] == math.inf  # [0.5, inf, inf]
    assert table.loc[("none", "deepfool"), "success_rate"] == pytest.approx(100 / 3)
    # Costs per attacked image: none attacks 3 images, hamming 4.
    assert table.loc[("none", "fmn"), "forward_passes_per_sample"] == pytest.approx(10.0)
    assert table.loc[("none", "deepfool"), "backward_passes_per_sample"] == pytest.approx(20.0)
    assert table.loc[("hamming", "fmn"), "backward_passes_per_sample"] == pytest.approx(10.0)
    assert table.loc[("hamming", "fmn"), "seconds"] == pytest.approx(2.0)
    assert math.isnan(table.loc[("hamming", "best-known"), "seconds"])


def test_deepfool_table_stays_deepfool_only_and_the_summary_shows_infinity(run_dir: Path) -> None:
    assert read_table(run_dir, "deepfool")["attack"].unique().tolist() == ["deepfool"]
    summary = (run_dir / "summary.md").read_text()
    assert "## DeepFool (the paper's metric: DeepFool alone)" in summary
    assert "any of `deepfool`, `fmn` found" in summary and "- `fmn`: FMN (hand-written)." in summary
    assert "∞" in summary and "(successes only)" in summary
    assert (run_dir / "figures" / "security_curves.png").is_file()
    tables = [line for line in summary.splitlines() if line.startswith("|")]
    assert max(len(line) for line in tables) <= 120


def test_costs_survive_the_round_trip(tmp_path: Path) -> None:
    costs = write_runs(tmp_path).collect().costs.set_index(["window", "attack"])
    for (window, attack), (forward, backward, seconds) in COSTS_GIVEN.items():
        row = costs.loc[(window, attack)]
        assert (row["forward_passes"], row["backward_passes"], row["seconds"]) == (forward, backward, seconds)
        assert row["n_attacked"] == (3 if window == "none" else 4) and row["model_id"] == f"cnn_k3_{window}_s0"
    assert list(COSTS.names[:6]) == list(CLEAN.names[:6])  # identity first


def test_report_rebuilds_the_new_tables_from_the_consolidated_records_alone(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "runs")  # a committed report keeps only the consolidated records
    for name in ("table_minimal_norm.csv", "table_attack_quality.csv"):
        (copy / name).unlink()
    report.build_report(copy)
    for name in ("table_minimal_norm.csv", "table_attack_quality.csv", "costs.csv"):
        assert (copy / name).read_text() == (run_dir / name).read_text(), name
