"""The verdict end to end: synthetic stored records with a known effect -> build_report -> table_verdict.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustbench_win.report.build import build_report
from robustbench_win.store.records import ATTACK_RECORDS, LEAKAGE_RECORDS, CleanResult, ModelIdentity
from robustbench_win.store.run_folder import RunFolder

SEEDS = range(5)
N_IMAGES = 30
CLAIMS = ("clean accuracy gain", "minimal-norm robustness gain", "spatial robustness gain",
          "leakage reduction, block layers", "leakage reduction, stem")


def write_folder(out: Path, sign: float, rng: np.random.Generator) -> Path:
    """Models at k = 3 and 11, none vs hamming; hamming k = 11 differs from every baseline by ``sign`` x a
    large effect in the claimed direction (sign 0: noise only)."""
    folder = RunFolder(out)
    folder.claim('name = "synthetic"\n')
    for k in (3, 11):
        for window in ("none", "hamming"):
            shift = sign if (k, window) == (11, "hamming") else 0.0
            for seed in SEEDS:
                identity = ModelIdentity(f"cnn_k{k}_{window}_s{seed}", "toy", "cnn", k, window, seed)
                accuracy = 0.80 + 0.05 * shift + rng.normal(0, 0.005)
                folder.write_clean(identity, CleanResult("ok", None, accuracy, 100, round(100 * accuracy), 1.0, "", 1000))
                # A 7 x 7 stem and one k x k block, trained and untrained: the learned change carries the effect.
                init = 0.5 + rng.normal(0, 0.01, size=2)
                for measure, medians in (("spectral-init", init), ("spectral", init - 0.2 * shift + rng.normal(0, 0.01, size=2))):
                    folder.write_step(LEAKAGE_RECORDS, identity, {"measure": measure}, [{
                        "layer": f"conv{i}", "layer_index": i, "layer_kernel_size": 7 if i == 0 else k,
                        "layer_window": window, "n_fft": 64, "n_slices": 8, "n_empty": 0, "leakage_median": medians[i],
                        "leakage_q25": 0.4, "leakage_q75": 0.6, "leakage_mean": 0.5} for i in range(2)])
                folder.write_step(ATTACK_RECORDS, identity, {"attack": "deepfool", "family": "deepfool"},
                                  [sample(i, 1.0 + 0.5 * shift + rng.normal(0, 0.05)) for i in range(N_IMAGES)])
                robust = rng.random(N_IMAGES) < 0.3 + 0.4 * shift + rng.normal(0, 0.02)
                folder.write_step(ATTACK_RECORDS, identity, {"attack": "spatial-grid", "family": "spatial"},
                                  [sample(i, np.nan, success=not robust[i]) for i in range(N_IMAGES)])
    return out


def sample(index: int, l2: float, success: bool = True) -> dict:
    return {"index": index, "label": index % 10, "clean_pred": index % 10, "attacked": True,
            "adv_pred": (index + 1) % 10 if success else index % 10, "success": success, "l2": l2, "rho": l2 / 9,
            "iterations": 2, "dx": None, "dy": None, "angle": None}


@pytest.mark.parametrize(("sign", "expected"), [(1.0, "supported"), (-1.0, "contradicted"), (0.0, "inconclusive")])
def test_verdict_follows_the_effect_built_into_the_records(tmp_path: Path, sign: float, expected: str) -> None:
    out = write_folder(tmp_path / "run", sign, np.random.default_rng(7))
    build_report(out)
    verdict = pd.read_csv(out / "table_verdict.csv")
    assert len(verdict) == 2 * len(CLAIMS)  # against none at k = 11 and none at k = 3
    for claim in CLAIMS:
        rows = verdict[verdict["claim"].str.startswith(claim)]
        assert len(rows) == 2 and (rows["verdict"] == expected).all(), rows[["claim", "verdict", "reason"]]
    summary = (out / "summary.md").read_text()
    assert summary.index("## Verdict") < summary.index("## Clean accuracy")
    assert summary.count("Rule: A claim is supported") == 1


def test_verdict_of_a_folder_without_attacks_is_inconclusive_with_a_reason(tmp_path: Path) -> None:
    out = write_folder(tmp_path / "run", 1.0, np.random.default_rng(3))
    for path in (out / "runs").glob("*/attack-*.csv"):
        path.unlink()
    build_report(out)
    verdict = pd.read_csv(out / "table_verdict.csv").set_index("claim")
    norm = verdict[verdict.index.str.startswith("minimal-norm")]
    assert (norm["verdict"] == "inconclusive").all() and norm["reason"].str.contains("no records").all()
    assert (verdict[verdict.index.str.startswith("leakage")]["verdict"] == "supported").all()
