"""build_report on synthetic run folders written in the runner's on-disk format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustbench_win.report import figures
from robustbench_win.report import build as report
from robustbench_win.analysis import tables
from robustbench_win.report.markdown import to_markdown_parts
from robustbench_win.report.summary import DEEPFOOL_COLUMNS, PARTS, Report
from robustbench_win.store.records import ATTACK_RECORDS
from robustbench_win.store.run_folder import ResultsNotFoundError, RunFolder

SAMPLE_COLUMNS = ATTACK_RECORDS.schema.names

KERNELS = (3, 5)
WINDOWS = ("none", "hamming")
SEEDS = (0, 1, 2)
N_TEST = 24
FAILED_MODEL = "cnn-k5-hamming-s2"
CRASHED = ("cnn-k3-none-s1", "deepfool-foolbox")
SUITE_TEXT = '[suite]\nname = "toy"\nkernel_sizes = [3, 5]\n'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def model_id(k: int, window: str, seed: int) -> str:
    return f"cnn-k{k}-{window}-s{seed}"


def sample_rows(rng: np.random.Generator, k: int, window: str, seed: int, attack: str) -> list[dict]:
    """Per-sample records of one model and attack, with misclassified and failed samples."""
    family = "deepfool" if attack.startswith("deepfool") else "spatial"
    rows = []
    for index in range(N_TEST):
        label = index % 10
        attacked = bool(rng.random() < 0.85)
        success = attacked and bool(rng.random() < 0.75)
        l2 = float(rng.uniform(0.05, 1.4)) if success else (0.002 if attacked else math.nan)
        transform = success and family == "spatial"
        rows.append({
            "model_id": model_id(k, window, seed), "dataset": "toy-digits", "model": "cnn",
            "kernel_size": k, "window": window, "seed": seed, "attack": attack, "family": family,
            "index": index, "label": label, "clean_pred": label if attacked else (label + 1) % 10,
            "attacked": attacked, "adv_pred": ((label + 2) % 10 if success else label) if attacked else None,
            "success": success, "l2": l2 if family == "deepfool" else math.nan,
            "rho": l2 / 9.0 if family == "deepfool" else math.nan,
            "iterations": int(rng.integers(1, 6)) if attacked and family == "deepfool" else None,
            "dx": int(rng.integers(-3, 4)) if transform else None,
            "dy": int(rng.integers(-3, 4)) if transform else None,
            "angle": float(rng.choice([-12.0, -4.0, 0.0, 6.0, 30.0])) if transform else None,
        })
    return rows


def write_run(out: Path) -> Path:
    """A run folder: 2 kernel sizes x 2 windows x 3 seeds, one failed model, one crashed attack."""
    rng = np.random.default_rng(7)
    timings = {}
    for k in KERNELS:
        for window in WINDOWS:
            for seed in SEEDS:
                mid = model_id(k, window, seed)
                folder = out / "runs" / mid
                folder.mkdir(parents=True)
                failed = mid == FAILED_MODEL
                clean = {"model_id": mid, "dataset": "toy-digits", "model": "cnn", "kernel_size": k,
                         "window": window, "seed": seed, "status": "failed" if failed else "ok",
                         "error": "RuntimeError: loss is NaN at epoch 3" if failed else None,
                         "accuracy": None if failed else round(0.9 + 0.01 * k + 0.02 * (window != "none")
                                                               + 0.003 * seed, 4),
                         "n_test": 1000, "n_correct": None if failed else 900, "train_seconds": 1.5,
                         "checkpoint": f"checkpoints/{mid}.pt"}
                (folder / "clean.json").write_text(json.dumps(clean))
                timings[mid] = {"train_seconds": 1.5, "clean_seconds": 0.25, "attack_seconds": {}}
                if failed:
                    continue
                for attack in ("deepfool", "spatial-grid", "spatial-random"):
                    frame = pd.DataFrame(sample_rows(rng, k, window, seed, attack), columns=SAMPLE_COLUMNS)
                    frame.to_csv(folder / f"attack-{attack}.csv", index=False)
                    timings[mid]["attack_seconds"][attack] = 2.0
                if (mid, "deepfool-foolbox") == CRASHED:
                    (folder / "attack-deepfool-foolbox.error.json").write_text(
                        json.dumps({"attack": "deepfool-foolbox", "error": "ImportError: no module named foolbox"}))
    meta = {"suite_name": "toy", "dataset_name": "Toy digits (synthetic)",
            "notes": ["Width 16 instead of 128.", "3 epochs instead of 150."],
            "versions": {"python": "3.11.0", "torch": "2.5.0"}, "device": "cpu",
            "radii": [0.1, 0.5], "timings": {"total_seconds": 123.456, "models": timings}}
    (out / "meta.json").write_text(json.dumps(meta))
    (out / "suite.toml").write_text(SUITE_TEXT)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = write_run(tmp_path_factory.mktemp("run"))
    return out, report.build_report(out)


def collect(out: Path):
    return RunFolder(out).collect()


def test_collect_reads_records_and_failures(tmp_path):
    results = collect(write_run(tmp_path))
    assert len(results.clean) == len(KERNELS) * len(WINDOWS) * len(SEEDS)
    assert len(results.samples) == (len(results.clean) - 1) * 3 * N_TEST
    assert list(results.samples.columns) == SAMPLE_COLUMNS
    assert results.samples["attacked"].dtype == bool and results.samples["l2"].dtype == float
    assert results.radii == (0.1, 0.5)
    assert results.suite_text == SUITE_TEXT
    failures = results.failures.set_index("model_id")
    assert failures.loc[FAILED_MODEL, "stage"] == "model"
    assert "loss is NaN" in failures.loc[FAILED_MODEL, "error"]
    assert failures.loc[CRASHED[0], "step"] == CRASHED[1]


def test_missing_results_raise_a_helpful_error(tmp_path):
    with pytest.raises(ResultsNotFoundError, match="robustbench-win run SUITE --out"):
        report.build_report(tmp_path / "nowhere")
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="clean.json"):
        collect(tmp_path / "empty")


def test_malformed_csv_names_the_file(tmp_path):
    folder = tmp_path / "runs" / "m"
    folder.mkdir(parents=True)
    pd.DataFrame({"model_id": ["m"]}).to_csv(folder / "attack-deepfool.csv", index=False)
    with pytest.raises(ValueError, match="attack-deepfool.csv"):
        collect(tmp_path)


def test_report_writes_every_file(built):
    out, written = built
    names = {p.relative_to(out).as_posix() for p in written}
    expected = {"clean.csv", "samples.csv.gz", "costs.csv", "timings.csv", "summary.md", "figures/clean_accuracy.png",
                "figures/deepfool_rho.png", "figures/spatial_robust_accuracy.png", "figures/security_curves.png"}
    expected |= {f"{kind}.csv" for kind in ("leakage", "kernels", "shift", "shift_accuracy", "checks")}
    table_names = {part.name for part in PARTS if part.build is not None}
    expected |= {f"table_{t}.{ext}" for t in table_names for ext in ("csv", "md")}
    assert table_names >= {"clean_accuracy", "deepfool", "spatial", "minimal_norm", "attack_quality"}
    assert names == expected
    for path in written:
        assert path.stat().st_size > 0
    for name in ("clean_accuracy", "deepfool_rho", "spatial_robust_accuracy"):
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    assert not list(out.rglob("*.tmp"))


def test_report_is_byte_identical_when_rebuilt(tmp_path):
    out = write_run(tmp_path)
    first = {p: p.read_bytes() for p in report.build_report(out)}
    second = {p: p.read_bytes() for p in report.build_report(out)}
    for path, data in first.items():
        if path.suffix in (".csv", ".md"):
            assert second[path] == data, path


def test_table_csv_numbers_follow_from_samples_csv(built):
    out, _ = built
    samples = pd.read_csv(out / "samples.csv.gz")
    deepfool = pd.read_csv(out / "table_deepfool.csv")
    row = deepfool[(deepfool["kernel_size"] == 5) & (deepfool["window"] == "hamming")].iloc[0]
    mine = samples[(samples["attack"] == "deepfool") & (samples["kernel_size"] == 5) & (samples["window"] == "hamming")]
    assert row["n_seeds"] == 2  # seed 2 failed to train
    medians, rates, robust = [], [], []
    for _, rows in mine.groupby("seed"):
        fooled = rows[rows["success"]]
        medians.append(fooled["l2"].median())
        rates.append(100 * len(fooled) / rows["attacked"].sum())  # failures counted here
        robust.append(100 * (rows["attacked"] & (~rows["success"] | (rows["l2"] > 0.5))).sum() / len(rows))
    assert row["median_l2_mean"] == pytest.approx(np.mean(medians))
    assert row["median_l2_std"] == pytest.approx(np.std(medians, ddof=1))
    assert row["success_rate_mean"] == pytest.approx(np.mean(rates))
    assert row["robust_acc@0.5_mean"] == pytest.approx(np.mean(robust))
    assert "robust_acc@0.25_mean" not in deepfool.columns  # radii come from meta.json

    base = samples[(samples["attack"] == "deepfool") & (samples["kernel_size"] == 5) & (samples["window"] == "none")]
    both = mine[mine["success"]].merge(base[base["success"]], on=["seed", "index"])
    assert row["wilcoxon_n_pairs"] == len(both)
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(both["l2_x"], both["l2_y"]).pvalue)


def test_spatial_and_clean_csv_follow_from_records(built):
    out, _ = built
    samples = pd.read_csv(out / "samples.csv.gz")
    spatial = pd.read_csv(out / "table_spatial.csv")
    grid = samples[(samples["attack"] == "spatial-grid") & (samples["kernel_size"] == 3)
                   & (samples["window"] == "none")]
    robust = [100 * (r["attacked"] & ~r["success"]).sum() / len(r) for _, r in grid.groupby("seed")]
    row = spatial[(spatial["kernel_size"] == 3) & (spatial["window"] == "none")].iloc[0]
    assert row["spatial-grid:robust_acc_mean"] == pytest.approx(np.mean(robust))
    assert row["spatial-grid:robust_acc_std"] == pytest.approx(np.std(robust, ddof=1))
    assert tables.spatial_attacks(spatial) == ["spatial-grid", "spatial-random"]

    clean = pd.read_csv(out / "table_clean_accuracy.csv").set_index("kernel_size")
    accs = [100 * (0.9 + 0.05 + 0.02 + 0.003 * s) for s in (0, 1)]
    assert clean.loc[5, "hamming:acc_mean"] == pytest.approx(np.mean(accs))
    assert clean.loc[5, "hamming:n_seeds"] == 2
    assert clean.loc[5, "hamming:diff_mean"] == pytest.approx(2.0)


def test_summary_has_every_section(built):
    out, _ = built
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert text.startswith("# toy: Toy digits (synthetic)\n")
    for needle in ("Width 16 instead of 128.", "## Clean accuracy", "## DeepFool", "## Spatial transformations",
                   "## Failures", FAILED_MODEL, "loss is NaN", "ImportError: no module named foolbox",
                   "```toml\n" + SUITE_TEXT, "| torch", "2.5.0", "Device: cpu.", "Total: 123.5 s.",
                   "![Clean accuracy vs kernel size](figures/clean_accuracy.png)",
                   "(figures/deepfool_rho.png)", "(figures/spatial_robust_accuracy.png)", "max(|dx|, |dy|)"):
        assert needle in text, needle
    for part in to_markdown_parts(report.build_tables(Report(collect(out), out))["deepfool"], DEEPFOOL_COLUMNS):
        assert part in text
    assert "Width 16" in text.split("## Clean accuracy")[0]


def test_report_without_attacks_or_meta(tmp_path):
    folder = tmp_path / "runs" / "m1"
    folder.mkdir(parents=True)
    (folder / "clean.json").write_text(json.dumps(
        {"model_id": "m1", "dataset": "toy", "model": "cnn", "kernel_size": 3, "window": "none", "seed": 0,
         "status": "ok", "error": None, "accuracy": 0.5, "n_test": 10, "n_correct": 5, "train_seconds": 1.0,
         "checkpoint": "m1.pt"}))
    written = report.build_report(tmp_path)
    assert (tmp_path / "figures" / "clean_accuracy.png") in written
    assert not (tmp_path / "figures" / "deepfool_rho.png").exists()
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "_No results._" in text and "## Failures" not in text
    assert (tmp_path / "table_deepfool.csv").read_text().startswith("dataset,model,attack,kernel_size,window")


def test_figures_accept_raw_records(tmp_path, built):
    out, _ = built
    results = collect(out)
    path = figures.plot_deepfool_rho(results.samples, tmp_path / "rho.png", "Toy: rho")
    assert path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="nothing to plot"):
        figures.plot_spatial_robust_accuracy(results.samples.iloc[0:0], tmp_path / "x.png", "x")


def test_unfinished_model_folder_is_listed_as_failure(tmp_path):
    out = write_run(tmp_path)
    (out / "runs" / "cnn-k7-none-s0").mkdir()
    report.build_report(out)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "cnn-k7-none-s0" in summary and "no readable clean.json" in summary


def test_summary_tables_fit_a_normal_screen(built):
    from robustbench_win.report.markdown import SCREEN_WIDTH

    out, _ = built
    text = (out / "summary.md").read_text(encoding="utf-8")
    widths = [len(line) for line in text.splitlines() if line.startswith("|")]
    assert len(widths) > 20 and max(widths) <= SCREEN_WIDTH
    wide = pd.read_csv(out / "table_spatial.csv")
    assert len(wide.columns) == 4 + 2 * 9  # the CSV keeps every column
    assert "did not record its thread count" in text
