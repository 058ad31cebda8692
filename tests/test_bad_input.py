"""Bad input at the model contract and in stored records: one clear line (exit status 2), never a traceback."""

from __future__ import annotations

import copy
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_win.cli import main
from robustbench_win.data.datasets import ImageData
from robustbench_win.registry import MODELS
from robustbench_win.run.folder_lock import LOCK_NAME, hold_run_folder, run_holding
from robustbench_win.train.contract import CONTRACT_IMAGES, ModelContractError, check_model_contract
from test_parallel_runs import SMALL_SUITE

REPORT = Path(__file__).resolve().parents[1] / "reports" / "quick"  # a committed report: records, no runs/


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("robustbench-win: error: ")
    return err


@pytest.fixture
def report_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPORT, tmp_path / "quick"))


# --------------------------------------------------------------------------- stored records


def test_a_truncated_samples_file_is_named_with_how_to_restore_it(report_copy: Path, capsys) -> None:
    samples = report_copy / "samples.csv.gz"
    samples.write_bytes(samples.read_bytes()[: samples.stat().st_size // 2])  # cut as by a full disk or a copy
    assert main(["report", str(report_copy)]) == 2
    err = one_line_error(capsys)
    assert f"{samples} is cut short or damaged" in err and "restore it" in err


def test_a_report_folder_without_clean_csv_says_that_clean_csv_is_missing(report_copy: Path, capsys) -> None:
    (report_copy / "clean.csv").unlink()
    assert main(["report", str(report_copy)]) == 2
    err = one_line_error(capsys)
    assert "but not clean.csv" in err and "samples.csv.gz" in err and "no stored results" not in err


def test_report_given_a_file_says_to_pass_its_folder(report_copy: Path, capsys) -> None:
    assert main(["report", str(report_copy / "summary.md")]) == 2
    err = one_line_error(capsys)
    assert "is a file" in err and f"robustbench-win report {report_copy}" in err and "Errno" not in err


def test_report_on_a_folder_a_run_is_writing_is_refused(tmp_path: Path, report_copy: Path, capsys) -> None:
    summary = (report_copy / "summary.md").read_bytes()
    with hold_run_folder(report_copy):
        assert run_holding(report_copy) is not None
        assert main(["report", str(report_copy)]) == 2
    err = one_line_error(capsys)
    assert "is being written by a run (pid" in err and "Wait for the run to finish" in err
    assert (report_copy / "summary.md").read_bytes() == summary  # nothing was built from partial records
    assert run_holding(report_copy) is None  # the run has finished
    untouched = tmp_path / "untouched"
    untouched.mkdir()
    assert run_holding(untouched) is None and not (untouched / LOCK_NAME).exists()  # checking creates nothing


# --------------------------------------------------------------------------- the model contract


def tiny_data(num_classes: int = 10, count: int = 40) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 1, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count) % num_classes
    return ImageData("tiny", "tiny digits", images, labels, images, labels, num_classes, augment=False)


class Logits(nn.Module):
    """A linear classifier whose ``forward`` output is shaped by ``wrap`` (the contract holds for the identity)."""

    def __init__(self, outputs: int, wrap=lambda logits, images: logits) -> None:
        super().__init__()
        self.linear = nn.Linear(64, outputs)
        self.norm = nn.BatchNorm1d(outputs)
        self.wrap = wrap

    def forward(self, images: torch.Tensor):
        return self.wrap(self.norm(self.linear(images.flatten(1))), images)


def test_a_model_that_keeps_the_contract_passes_and_is_left_as_it_was() -> None:
    model = Logits(10)
    before = copy.deepcopy(model.state_dict())
    torch.manual_seed(5)
    state = torch.get_rng_state()
    check_model_contract(model, tiny_data(), name="linear")
    assert model.training  # its mode is restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(("model", "expected"), [
    (Logits(10, lambda logits, images: (logits, images)), "returns a tuple; expected one tensor of logits of shape (32, 10)"),
    (Logits(11), "returns logits of shape (32, 11); expected (32, 10)"),
    (Logits(10, lambda logits, images: logits.argmax(dim=1, keepdim=True).expand(-1, 10)), "returns torch.int64 values"),
    # NaN for the images whose first pixel is dark: some inputs only, before any training
    (Logits(10, lambda logits, images: logits / (images[:, :1, 0, 0] > 0.2).float() * 0), "NaN or infinite logits for "),
])
def test_a_model_that_breaks_the_contract_is_named_with_what_is_wrong(model: nn.Module, expected: str) -> None:
    with pytest.raises(ModelContractError) as error:
        check_model_contract(model, tiny_data(), name="plug-in-net")
    assert str(error.value).startswith(f"model 'plug-in-net' (before training), given {CONTRACT_IMAGES} training images "
                                       f"of tiny digits,")
    assert expected in str(error.value)


def test_nan_logits_before_training_are_not_blamed_on_the_learning_rate() -> None:
    dark = Logits(10, lambda logits, images: logits / (images[:, :1, 0, 0] > 0.2).float() * 0)
    with pytest.raises(ModelContractError, match="nothing has been trained yet, so the learning rate is not the cause"):
        check_model_contract(dark, tiny_data(), name="dark")
    count = int((tiny_data().train_images[:CONTRACT_IMAGES, 0, 0, 0] <= 0.2 * 255).sum())
    assert 0 < count < CONTRACT_IMAGES  # an independent count: some images, not all


PLUGIN = textwrap.dedent('''
    from torch import nn
    from robustbench_win.registry import register_model

    @register_model("tuple-net")
    def tuple_net(*, in_channels, num_classes, kernel_size=3, window="none"):
        """Returns (logits, features), as many feature extractors do."""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(in_channels, 4, kernel_size, padding=kernel_size // 2)
                self.fc = nn.Linear(4, num_classes)

            def forward(self, x):
                features = self.conv(x).relu().mean(dim=(2, 3))
                return self.fc(features), features
        return Net()
''')


@pytest.fixture
def tuple_plugin(tmp_path: Path):
    plugin = tmp_path / "tuple_net.py"
    plugin.write_text(PLUGIN)
    yield plugin
    MODELS._entries.pop("tuple-net", None)


@pytest.mark.usefixtures("in_tmp_path")
def test_training_a_model_that_returns_a_tuple_is_one_line_before_training(tmp_path: Path, tuple_plugin: Path,
                                                                          capsys) -> None:
    args = ["--plugin", str(tuple_plugin), "train", "--model", "tuple-net", "--epochs", "1", "--train-size", "100",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet"]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert "model 'tuple-net' (before training)" in err and "returns a tuple" in err
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())  # nothing was trained


@pytest.mark.usefixtures("in_tmp_path")
def test_a_run_in_which_every_model_failed_exits_2_with_one_line(tmp_path: Path, tuple_plugin: Path, capsys) -> None:
    suite = tmp_path / "tuple.toml"
    suite.write_text(SMALL_SUITE.format(model="tuple-net").replace("args = { depth = 2, width = 8 }", "args = {}"))
    out = tmp_path / "out"
    assert main(["--plugin", str(tuple_plugin), "run", str(suite), "--out", str(out), "--quiet",
                 "--checkpoint-dir", str(tmp_path / "ckpt")]) == 2
    err = one_line_error(capsys)
    assert "every model of the run failed (4 of 4)" in err and "returns a tuple" in err
    assert (out / "summary.md").is_file()  # the report, listing each failure, is written all the same
