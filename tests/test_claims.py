"""The verdict end to end: synthetic stored records with a known effect -> build_report -> table_verdict.csv."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustbench_win.analysis import claims
from robustbench_win.report.build import build_report
from robustbench_win.store.records import ATTACK_RECORDS, LEAKAGE_RECORDS, CleanResult, ModelIdentity
from robustbench_win.store.run_folder import Results, RunFolder

SEEDS = range(5)
N_IMAGES = 30
pytestmark = pytest.mark.usefixtures("unrasterised_figures")  # tables and summary.md only
CLAIMS = ("clean accuracy gain", "min-norm AUC gain", "min-norm gain, both correct", "spatial robust acc. gain",
          "spatial fooled share drop", "leakage reduction, block layers", "leakage reduction, stem")


def write_folder(out: Path, sign: float, rng: np.random.Generator, kernel_sizes: tuple[int, ...] = (3, 11)) -> Path:
    """Models at ``kernel_sizes``, none vs hamming; hamming at the largest k differs from every baseline by
    ``sign`` x a large effect in the claimed direction (sign 0: noise only)."""
    folder = RunFolder(out)
    folder.claim('name = "synthetic"\n')
    for k in kernel_sizes:
        for window in ("none", "hamming"):
            shift = sign if (k, window) == (max(kernel_sizes), "hamming") else 0.0
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


def test_a_run_at_k_3_alone_states_each_claim_once(tmp_path: Path) -> None:
    # "large k" is then the reference k: the comparison at the same k and at k = 3 is one comparison.
    results = RunFolder(write_folder(tmp_path / "k3", 1.0, np.random.default_rng(3), kernel_sizes=(3,))).collect()
    rows = [row.claim for row in claims.claim_results(results)]
    assert sorted(rows) == sorted(f"{claim}: hamming k3 vs none k3" for claim in CLAIMS)
    per_k = [row.claim for row in claims.per_k_results(results)]
    assert len(per_k) == len(set(per_k))


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
    verdict_text = summary[summary.index("## Verdict"):summary.index("## Overview")]
    headers = [line for i, line in enumerate(verdict_text.splitlines()) if line.startswith("|")
               and (i == 0 or not verdict_text.splitlines()[i - 1].startswith("|"))]
    assert headers and all(h.startswith("| claim ") for h in headers)  # every part of a split table keeps its key
    assert summary.index("## Verdict") < summary.index("### Verdict at every kernel size") < summary.index("## Overview")
    per_k = pd.read_csv(out / "table_verdict_per_k.csv")
    # Primary claims only, at k = 3 (vs none k3) and k = 11 (vs none k11 and vs none k3).
    assert len(per_k) == 4 * 3 and set(per_k["role"]) == {"primary"}
    at_3 = per_k[per_k["claim"].str.endswith("hamming k3 vs none k3")]
    assert len(at_3) == 4 and (at_3["verdict"] == "inconclusive").all()  # no effect built in at k = 3


def test_verdict_of_a_folder_without_attacks_is_inconclusive_with_a_reason(tmp_path: Path) -> None:
    out = write_folder(tmp_path / "run", 1.0, np.random.default_rng(3))
    for path in (out / "runs").glob("*/attack-*.csv"):
        path.unlink()
    build_report(out)
    verdict = pd.read_csv(out / "table_verdict.csv").set_index("claim")
    norm = verdict[verdict.index.str.startswith("min-norm")]
    assert (norm["verdict"] == "inconclusive").all() and norm["reason"].str.startswith("0 paired seeds").all()
    assert norm["note"].str.contains("no paired seed has records").all()
    assert (verdict[verdict.index.str.startswith("leakage")]["verdict"] == "supported").all()


# --------------------------------------------------------------------------- per-seed effects by hand

INF = float("inf")
# Best-known norms per seed (one attack), None: misclassified. ||x|| = 2 for every image.
NORMS = {
    ("none", 0): [0.2, 0.4, 0.6, 0.8, 1.5, INF, None, 0.3],
    ("hamming", 0): [0.3, 0.5, 0.6, 0.9, INF, INF, 0.4, None],
    ("none", 1): [0.5] * 8,
    ("hamming", 1): [0.4] * 8,
}


def hand_results() -> Results:
    records = []
    for (window, seed), norms in NORMS.items():
        for index, value in enumerate(norms):
            attacked, success = value is not None, value is not None and value < INF
            records.append({
                "model_id": f"cnn-k3-{window}-s{seed}", "dataset": "toy", "model": "cnn", "kernel_size": 3,
                "window": window, "seed": seed, "attack": "deepfool", "family": "deepfool", "index": index,
                "label": 1, "clean_pred": 1 if attacked else 2, "attacked": attacked, "adv_pred": 3 if success else 1,
                "success": success, "l2": value if success else np.nan, "rho": value / 2 if success else np.nan,
                "iterations": 3, "dx": np.nan, "dy": np.nan, "angle": np.nan})
    return Results(clean=pd.DataFrame(), records={ATTACK_RECORDS.name: pd.DataFrame(records)},
                   failures=pd.DataFrame(), meta={"radii": [0.5, 1.0]})


def test_the_design_paragraph_takes_each_claims_words_and_role_from_the_claim(monkeypatch) -> None:
    clean = pd.DataFrame({"window": ["none", "hamming", "none", "hamming"], "kernel_size": [3, 3, 9, 9]})
    results = Results(clean=clean, records={}, failures=pd.DataFrame(), meta={"radii": [0.5, 2.0]})
    text = claims.design_text(results)
    assert text.startswith("Each row compares the hamming model with an unwindowed model")
    assert "(k = 9)" in text and "curve on [0, 2]" in text and "The both-correct row (secondary)" in text
    promoted = [dataclasses.replace(c, role="primary") if c.effects is claims.both_correct_effects else c
                for c in claims.CLAIMS]
    monkeypatch.setattr(claims, "CLAIMS", tuple(promoted))
    assert "The both-correct row (primary)" in claims.design_text(results)
    monkeypatch.setattr(claims, "CLAIMS", tuple(c for c in promoted if c.effects is not claims.spatial_effects))
    assert "Spatial:" not in claims.design_text(results)


def test_auc_effect_counts_every_image_with_norms_capped_at_the_largest_radius() -> None:
    inputs = claims.Inputs(hand_results())
    assert inputs.radius == 1.0
    effects = claims.auc_effects(inputs, claims.Pair("hamming", 3, 3))
    # Seed 0, capped at 1: none [.2, .4, .6, .8, 1, 1, 0, .3] sums to 4.3, hamming [.3, .5, .6, .9, 1, 1, .4, 0]
    # to 4.7, over 8 images: 53.75 % and 58.75 %. Seed 1: 50 % and 40 %.
    assert effects.effects.to_dict() == pytest.approx({0: 5.0, 1: -10.0})
    assert effects.baseline.to_dict() == pytest.approx({0: 53.75, 1: 50.0})
    # Robust accuracy at 0.5: seed 0 4/8 both, seed 1 0/8 both; at 1: 2/8 both (1.5 and inf vs inf, inf).
    assert effects.extra.endswith("ε=0.5: +0, ε=1: +0")


def test_both_correct_effect_is_a_per_seed_hodges_lehmann_with_its_exclusions() -> None:
    effects = claims.both_correct_effects(claims.Inputs(hand_results()), claims.Pair("hamming", 3, 3))
    # Seed 0: images 0..5 are attacked by both: capped differences .1, .1, 0, .1, 0 (1 - 1), 0 (both
    # failed). Walsh averages: 6 x 0, 9 x .05, 6 x .1 -> median .05. Seed 1: every difference -.1.
    assert effects.effects.to_dict() == pytest.approx({0: 0.05, 1: -0.1})
    assert effects.baseline.to_dict() == pytest.approx({0: 0.7, 1: 0.5})  # medians of the capped baseline norms
    assert effects.note.startswith("excluded 2 of 16 (seed, image) pairs (2, 0 per seed)")
    assert "+0.025" in effects.extra and "-0.05" in effects.extra  # in rho: differences / ||x|| = / 2
