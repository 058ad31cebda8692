"""What the command line prints for each kind of error: the user's own in one line (status 2), a bug as an
internal error with its traceback in a file (status 1), everything with its traceback under --debug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import robustbench_win.cli as cli
from robustbench_win.cli import main
from robustbench_win.errors import BadValueError, UserError
from robustbench_win.registry import PluginError, UnknownNameError
from robustbench_win.store.records import RecordError
from robustbench_win.suite import SuiteError

pytestmark = pytest.mark.usefixtures("in_tmp_path")


def fail_with(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """Make `report` raise ``error`` (as if building the report had)."""
    def build(out: Path) -> list[Path]:
        raise error

    monkeypatch.setattr(cli, "build_report", build)


def test_a_library_error_is_an_internal_error_with_its_traceback_in_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fail_with(monkeypatch, ValueError("cannot reindex on an axis with duplicate labels"))  # as pandas says it
    assert main(["report", str(tmp_path)]) == cli.EXIT_INTERNAL_ERROR == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("robustbench-win: internal error: ValueError: cannot reindex on an axis with duplicate labels")
    written = Path(re.search(r"the full traceback is in (\S+);", err).group(1))  # type: ignore[union-attr]
    assert written.is_relative_to(tmp_path / "cache")  # the cache folder (ROBUSTBENCH_WIN_CACHE in the tests)
    text = written.read_text()
    assert "Traceback (most recent call last)" in text and "in build" in text and "duplicate labels" in text
    assert "--debug" in err


@pytest.mark.parametrize("switch", [["--debug", "report"], ["report", "--debug"], ["report"]])
def test_debug_lets_the_error_through_with_its_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch: list[str]) -> None:
    if switch == ["report"]:
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    fail_with(monkeypatch, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        main([*switch, str(tmp_path)])


@pytest.mark.parametrize("error", [
    SuiteError("quick.toml: unknown key 'epochz'"), UnknownNameError("unknown model 'paper-cn'"),
    RecordError("runs/m/attack-deepfool.csv: empty file"), BadValueError("--radii expects numbers"),
    PluginError("plugin file 'x.py' does not exist"),
])
def test_the_users_own_errors_stay_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], error: UserError) -> None:
    fail_with(monkeypatch, error)
    assert main(["report", str(tmp_path)]) == cli.EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == f"robustbench-win: error: {error}\n"


def test_a_file_the_system_refuses_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fail_with(monkeypatch, PermissionError(13, "Permission denied", str(tmp_path / "meta.json")))
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"robustbench-win: error: cannot use '{tmp_path / 'meta.json'}': Permission denied\n"


def test_a_model_argument_the_factory_does_not_take_is_the_users_error(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", "paper-cnn", "--arg", "colour=3", "--epochs", "1", "--train-size", "100",
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustbench-win: error: model 'paper-cnn' takes no argument 'colour'") and len(err.splitlines()) == 1
