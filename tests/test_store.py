"""The run-folder store: one schema, typed reading and writing, per-model files, old folders still read."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustbench_win.attacks.result import SampleResult
from robustbench_win.report.build import build_report
from robustbench_win.measure.shift_consistency import SAMPLE_COLUMNS
from robustbench_win.store.records import ATTACK_RECORDS, CLEAN, SHIFT_RECORDS, CleanResult, ModelIdentity
from robustbench_win.store.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "fixtures" / "legacy-run"
TABLES = ("table_clean_accuracy", "table_deepfool", "table_spatial")
UNCHANGED_TABLES = ("table_deepfool", "table_spatial")  # the clean table has gained columns since


def assert_same_columns(rebuilt: Path, stored: Path) -> None:
    """Every column of the stored CSV is rebuilt with the same text (columns added since are allowed)."""
    old = pd.read_csv(stored, dtype=str, keep_default_na=False)
    new = pd.read_csv(rebuilt, dtype=str, keep_default_na=False)
    assert set(old.columns) <= set(new.columns), rebuilt.name
    assert new[list(old.columns)].equals(old), rebuilt.name
IDENTITY = ModelIdentity("cnn_k3_none_s0", "toy", "cnn", 3, "none", 0)
IDENTITY_COLUMNS = ["model_id", "dataset", "model", "kernel_size", "window", "seed"]


def results() -> list[SampleResult]:
    return [
        SampleResult(index=4, label=1, clean_pred=1, attacked=True, success=True, adv_pred=7, l2=0.123456789012,
                     rho=0.0123, iterations=3),
        SampleResult.not_attacked(index=9, label=2, clean_pred=5),
        SampleResult(index=11, label=3, clean_pred=3, attacked=True, success=False, adv_pred=3, l2=0.0, rho=0.0,
                     iterations=775, dx=-1.5, dy=3.0, angle=-30.0),
    ]


def relabelled(stored: Path) -> str:
    """A stored markdown table with its pooled Wilcoxon p-value labelled as today: unadjusted, descriptive."""
    return re.sub(r"Wilcoxon p(?! \(unadjusted)", "Wilcoxon p (unadjusted, descriptive)", stored.read_text())


def text_of(markdown: str) -> list[str]:
    """A pipe table's text, row by row, whatever its column widths and escaped pipes."""
    return [re.sub(r"[\s\-:|]+", " ", line.replace("\\|", "|")).strip() for line in markdown.splitlines()]


# --------------------------------------------------------------------------- schema


def test_schema_comes_from_the_result_type_and_the_model_identity() -> None:
    # Written out by hand from the dataclass fields and their annotations.
    expected = {
        "model_id": "str", "dataset": "str", "model": "str", "kernel_size": "Int64", "window": "str", "seed": "Int64",
        "attack": "str", "family": "str",
        "index": "Int64", "label": "Int64", "clean_pred": "Int64", "attacked": "bool", "adv_pred": "Int64",
        "success": "bool", "l2": "float64", "rho": "float64", "iterations": "Int64",
        "dx": "float64", "dy": "float64", "angle": "float64",
    }
    assert ATTACK_RECORDS.schema.dtypes == expected
    optional = [c.name for c in ATTACK_RECORDS.schema.columns if not c.required]
    assert optional == ["dx", "dy", "angle"]  # the fields with a default
    assert CLEAN.names[6:] == ["status", "error", "accuracy", "n_test", "n_correct", "train_seconds", "checkpoint",
                               "n_params"]


def test_records_round_trip_typed(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_step(ATTACK_RECORDS, IDENTITY, {"attack": "spatial-grid", "family": "spatial"},
                      (r.record() for r in results()))
    path = folder.step_file(ATTACK_RECORDS, IDENTITY.model_id, "spatial-grid")
    assert path == tmp_path / "runs" / "cnn_k3_none_s0" / "attack-spatial-grid.csv"
    frame = ATTACK_RECORDS.schema.read_csv(path)
    assert frame["attacked"].tolist() == [True, False, True] and frame["attacked"].dtype == bool
    assert frame["l2"].iloc[0] == pytest.approx(0.123456789, abs=1e-12)  # 9 significant digits on disk
    assert math.isnan(frame["l2"].iloc[1]) and frame["iterations"].tolist() == [3, 0, 775]
    assert frame["angle"].isna().tolist() == [True, True, False] and frame["dx"].iloc[2] == -1.5
    assert set(frame["model_id"]) == {"cnn_k3_none_s0"} and set(frame["family"]) == {"spatial"}
    assert folder.step_done(ATTACK_RECORDS, IDENTITY.model_id, "spatial-grid")


def test_a_bad_value_names_the_file_and_the_column(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_step(ATTACK_RECORDS, IDENTITY, {"attack": "deepfool", "family": "deepfool"},
                      (r.record() for r in results()))
    path = folder.step_file(ATTACK_RECORDS, IDENTITY.model_id, "deepfool")
    path.write_text(path.read_text().replace(",True,", ",maybe,", 1))
    with pytest.raises(ValueError, match=r"attack-deepfool.csv: column 'attacked' must hold bool values, got 'maybe'"):
        ATTACK_RECORDS.schema.read_csv(path)
    assert not folder.step_done(ATTACK_RECORDS, IDENTITY.model_id, "deepfool")  # a rerun redoes it


def test_a_missing_optional_column_reads_as_missing_values(tmp_path: Path) -> None:
    frame = ATTACK_RECORDS.schema.frame(IDENTITY.fields() | {"attack": "a", "family": "deepfool"} | r.record()
                                        for r in results())
    path = tmp_path / "old.csv"
    frame.drop(columns=["angle"]).to_csv(path, index=False)
    assert ATTACK_RECORDS.schema.read_csv(path)["angle"].isna().all()
    frame.drop(columns=["success"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing columns \['success'\]"):
        ATTACK_RECORDS.schema.read_csv(path)


def shift_row(**changes: object) -> dict[str, object]:
    row = {"index": 0, "label": 1, "dx_a": 1, "dy_a": 0, "dx_b": -2, "dy_b": 3, "pred_a": 1, "pred_b": 7,
           "consistent": False}
    return row | changes


def test_the_shift_record_schema_is_the_one_the_measure_declares() -> None:
    # Written out by hand: the identity, the measure's name, then the per-image columns.
    assert SHIFT_RECORDS.schema.names == [*IDENTITY_COLUMNS, "measure", "index", "label", "dx_a", "dy_a", "dx_b",
                                          "dy_b", "pred_a", "pred_b", "consistent"]
    assert SHIFT_RECORDS.schema.dtypes["consistent"] == "bool" and SHIFT_RECORDS.schema.dtypes["pred_b"] == "Int64"
    assert SHIFT_RECORDS.schema.names[7:] == list(SAMPLE_COLUMNS)


def test_a_record_missing_a_required_column_is_refused_not_filled(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    path = folder.step_file(SHIFT_RECORDS, IDENTITY.model_id, "shift")
    row = shift_row()
    del row["consistent"]
    with pytest.raises(ValueError, match=re.escape(f"{path}: a record lacks the required column 'consistent'")):
        folder.write_step(SHIFT_RECORDS, IDENTITY, {"measure": "shift"}, [shift_row(), row])
    with pytest.raises(ValueError, match=re.escape(f"{path}: column 'consistent' must hold True or False, got None")):
        folder.write_step(SHIFT_RECORDS, IDENTITY, {"measure": "shift"}, [shift_row(consistent=None)])
    assert not path.exists()
    folder.write_step(SHIFT_RECORDS, IDENTITY, {"measure": "shift"}, [shift_row(), shift_row(index=1, consistent=True)])
    assert SHIFT_RECORDS.schema.read_csv(path)["consistent"].tolist() == [False, True]


def test_a_clean_record_missing_a_required_column_names_its_file(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_clean(IDENTITY, CleanResult("ok", None, 0.5, 10, 5, 1.0, "x.pt"))
    path = folder.model_dir(IDENTITY.model_id) / "clean.json"
    record = json.loads(path.read_text())
    del record["n_correct"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=re.escape(f"{path}: a record lacks the required column 'n_correct'")):
        folder.collect()


# --------------------------------------------------------------------------- one model's files


def test_a_truncated_clean_record_is_not_finished(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_clean(IDENTITY, CleanResult("ok", None, 0.5, 10, 5, 1.0, "x.pt"))
    assert folder.read_clean(IDENTITY.model_id)["accuracy"] == 0.5
    path = folder.model_dir(IDENTITY.model_id) / "clean.json"
    path.write_text(path.read_text()[:40])  # cut by a crash
    assert folder.read_clean(IDENTITY.model_id) is None
    failures = folder.collect().failures
    assert failures["error"].str.contains("no readable clean.json").tolist() == [True]


def test_a_model_writes_only_under_its_own_folder(tmp_path: Path) -> None:
    # Parallel workers each handle one model: none may touch a file another one writes.
    folder = RunFolder(tmp_path)
    folder.claim("name = 'x'\n")
    folder.start({"suite_name": "x"})
    shared = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    folder.write_clean(IDENTITY, CleanResult("ok", None, 0.5, 10, 5, 1.0, "x.pt"))
    folder.write_step(ATTACK_RECORDS, IDENTITY, {"attack": "deepfool", "family": "deepfool"},
                      (r.record() for r in results()))
    folder.write_step_error(ATTACK_RECORDS, IDENTITY.model_id, "spatial-grid", RuntimeError("boom"))
    folder.add_timings(IDENTITY.model_id, {"attack_seconds": {"deepfool": 1.0}})
    folder.add_timings(IDENTITY.model_id, {"attack_seconds": {"spatial-grid": 2.0}, "train_seconds": 3.0})
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - set(shared)
    assert {p.parent for p in written} == {folder.model_dir(IDENTITY.model_id)}
    assert {p: p.read_bytes() for p in shared} == shared
    timings = json.loads((folder.model_dir(IDENTITY.model_id) / "timings.json").read_text())
    assert timings == {"attack_seconds": {"deepfool": 1.0, "spatial-grid": 2.0}, "train_seconds": 3.0}
    assert folder.collect().failures.set_index("step").loc["spatial-grid", "error"] == "RuntimeError: boom"


def test_timings_are_consolidated_so_a_folder_without_runs_keeps_them(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_clean(IDENTITY, CleanResult("ok", None, 0.5, 10, 5, 1.0, "x.pt"))
    folder.add_timings(IDENTITY.model_id, {"train_seconds": 3.25, "clean_seconds": 0.5,
                                           "attack_seconds": {"deepfool": 1.0, "spatial-grid": 2.125}})
    build_report(tmp_path)
    # Written out by hand: one row per number of timings.json.
    assert (tmp_path / "timings.csv").read_text().splitlines() == [
        "model_id,stage,step,seconds", "cnn_k3_none_s0,attack_seconds,deepfool,1.0",
        "cnn_k3_none_s0,attack_seconds,spatial-grid,2.125", "cnn_k3_none_s0,clean_seconds,,0.5",
        "cnn_k3_none_s0,train_seconds,,3.25"]
    with_runs = (tmp_path / "summary.md").read_text()
    shutil.rmtree(tmp_path / "runs")  # as committed
    build_report(tmp_path)
    assert RunFolder(tmp_path).collect().timings == {IDENTITY.model_id: {
        "train_seconds": 3.25, "clean_seconds": 0.5, "attack_seconds": {"deepfool": 1.0, "spatial-grid": 2.125}}}
    assert "| cnn_k3_none_s0 |" in with_runs.split("## Timings")[1]
    assert (tmp_path / "summary.md").read_text().split("## Timings")[1] == with_runs.split("## Timings")[1]


# --------------------------------------------------------------------------- folders written before the store


@pytest.mark.usefixtures("unrasterised_figures")
def test_a_folder_written_before_the_store_rebuilds_the_same_tables(tmp_path: Path) -> None:
    out = shutil.copytree(LEGACY, tmp_path / "legacy")
    build_report(out)
    expected = out / "expected"
    for name in TABLES:
        assert_same_columns(out / f"{name}.csv", expected / f"{name}.csv")
    for name in UNCHANGED_TABLES:
        # Markdown: the same text; only "|angle|" is now escaped, so that GitHub renders the table, and the
        # pooled Wilcoxon p-value is labelled unadjusted and descriptive (the verdict tests over seeds).
        assert text_of((out / f"{name}.md").read_text()) == text_of(relabelled(expected / f"{name}.md")), name
    summary = (out / "summary.md").read_text()
    assert "paper-cnn_k3_none_s0" in summary  # timings kept in meta.json by the old runner
    # Attack descriptions of an old folder come from the attacks its suite.toml names.
    assert "Grid: 7 rotations in [-30°, 30°] × 3 × 3 translations in [-3, 3] px = 63 transforms." in summary


# The quick report runs in `make test`; the two larger ones (10 to 15 s each) in `make test-slow`.
@pytest.mark.parametrize("report", ["quick", pytest.param("mnist14", marks=pytest.mark.slow),
                                    pytest.param("cifar10-jpeg", marks=pytest.mark.slow)])
@pytest.mark.usefixtures("unrasterised_figures")
def test_a_committed_report_rebuilds_from_its_consolidated_records(report: str, tmp_path: Path) -> None:
    committed = ROOT / "reports" / report
    # As committed: runs/ is not (the report reads clean.csv and samples.csv.gz, or an older
    # report's samples.csv), though a local checkout that made the report still has it.
    out = shutil.copytree(committed, tmp_path / report, ignore=shutil.ignore_patterns("figures", "runs", ".run.lock"))
    build_report(out)
    assert (out / "samples.csv.gz").is_file() and not (out / "samples.csv").exists()
    assert_same_columns(out / "samples.csv.gz", ATTACK_RECORDS.consolidated_file(committed))
    for name in ("clean.csv", *(f"{t}.csv" for t in TABLES)):
        assert_same_columns(out / name, committed / name)
    for name in UNCHANGED_TABLES:
        assert text_of((out / f"{name}.md").read_text()) == text_of(relabelled(committed / f"{name}.md")), name
