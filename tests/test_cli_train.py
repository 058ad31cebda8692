"""The command line: ``list`` and ``train`` run in a temporary folder, with their output checked."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from robustbench_win.cli import main
from robustbench_win.registry import ATTACKS, DATASETS, MODELS

TRAIN_ARGS = ["--model", "paper-cnn", "--dataset", "mnist5k", "--kernel-size", "5", "--window", "hamming",
              "--epochs", "1", "--width", "8", "--depth", "3", "--train-size", "500", "--seed", "0", "--quiet"]
ACCURACY = re.compile(r"^test accuracy: (\d+\.\d\d)% \((.+), (loaded|trained in [\d.]+ s)\)$", re.MULTILINE)
CHECKPOINT = re.compile(r"^checkpoint: (.+)$", re.MULTILINE)


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def listed_names(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines() if line.strip()]


# --------------------------------------------------------------------------- list


@pytest.mark.parametrize(("kind", "registry"), [("models", MODELS), ("datasets", DATASETS), ("attacks", ATTACKS)])
def test_list_prints_registered_names(kind: str, registry: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind]) == 0
    output = capsys.readouterr().out
    assert listed_names(output) == registry.names()  # type: ignore[attr-defined]
    assert len(registry.names()) >= 3  # type: ignore[attr-defined]


def test_list_models_with_pattern_and_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models", "paper-*"]) == 0
    output = capsys.readouterr().out
    assert listed_names(output) == ["paper-cnn", "paper-cnn-small"]
    assert "The paper's CNN" in output


def test_list_suites(capsys: pytest.CaptureFixture[str]) -> None:
    from robustbench_win.suite import shipped_suites

    assert main(["list", "suites"]) == 0
    names = listed_names(capsys.readouterr().out)
    assert names == sorted(shipped_suites())
    assert "quick" in names


def test_list_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["list", "widgets"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter importing torch: about 10 s on a busy machine
def test_module_entry_point_runs(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "robustbench_win", "list", "models"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "paper-cnn" in listed_names(result.stdout)


# --------------------------------------------------------------------------- train


def test_train_then_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint_dir = tmp_path / "ckpt"
    args = ["train", *TRAIN_ARGS, "--checkpoint-dir", str(checkpoint_dir)]
    assert main(args) == 0
    output = capsys.readouterr().out
    accuracy = ACCURACY.search(output)
    assert accuracy is not None, output
    assert 0.0 <= float(accuracy.group(1)) <= 100.0
    assert accuracy.group(2).startswith("MNIST") and accuracy.group(3).startswith("trained in")
    path = Path(CHECKPOINT.search(output).group(1))  # type: ignore[union-attr]
    assert path.is_file() and path.parent == checkpoint_dir
    assert path.name.startswith("paper-cnn_k5_hamming_s0_")
    assert not (tmp_path / "default-checkpoints").exists()

    assert main(args) == 0
    again = capsys.readouterr().out
    assert ACCURACY.search(again).group(3) == "loaded"  # type: ignore[union-attr]
    assert ACCURACY.search(again).group(1) == accuracy.group(1)  # type: ignore[union-attr]
    assert CHECKPOINT.search(again).group(1) == str(path)  # type: ignore[union-attr]
    assert list(checkpoint_dir.iterdir()) == [path]

    # A model argument given through --arg is part of the checkpoint key.
    assert main([*args, "--arg", "stem_width=4"]) == 0
    third = capsys.readouterr().out
    assert "trained in" in third and CHECKPOINT.search(third).group(1) != str(path)  # type: ignore[union-attr]


def test_train_unknown_model_lists_close_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", *TRAIN_ARGS, "--checkpoint-dir", str(tmp_path / "ckpt")]
    args[args.index("paper-cnn")] = "paper-cn"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustbench-win: error: unknown model 'paper-cn'")
    assert "Did you mean 'paper-cnn'" in err and "Available: convnext-cpu, paper-cnn, paper-cnn-small, resnet18, tv-resnet18, timm:NAME, torchvision:NAME." in err
    assert "Traceback" not in err


def test_train_even_kernel_size_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", *TRAIN_ARGS, "--checkpoint-dir", str(tmp_path / "ckpt")]
    args[args.index("--kernel-size") + 1] = "4"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "kernel size must be an odd integer >= 1" in err and "got 4" in err
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())


def test_train_unknown_dataset_and_bad_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "mnist6k", "--quiet"]) == 2
    assert "Did you mean 'mnist5k'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["train", "--window", "gauss"])
    assert info.value.code == 2


def test_train_bad_arg_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--arg", "stem_width", "--quiet"]) == 2
    assert "--arg expects KEY=VALUE" in capsys.readouterr().err


@pytest.fixture
def plugin_model() -> Iterator[str]:
    name = "rbw-cli-plugin-cnn"
    modules_before = set(sys.modules)
    yield name
    MODELS._entries.pop(name, None)
    for module in set(sys.modules) - modules_before:
        if module.startswith("robustbench_win_plugin_"):
            del sys.modules[module]


def test_plugin_file_makes_a_model_trainable(tmp_path: Path, plugin_model: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "my_cli_models.py"
    plugin.write_text(textwrap.dedent(
        f"""
        from torch import nn
        from robustbench_win.registry import register_model

        @register_model("{plugin_model}")
        def tiny(*, in_channels, num_classes, kernel_size=3, window="none", width=4):
            \"\"\"A tiny plug-in CNN.\"\"\"
            from robustbench_win.models import WindowedConv2d
            return nn.Sequential(
                WindowedConv2d(in_channels, width, kernel_size, window=window, padding=kernel_size // 2),
                nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
            )
        """
    ))
    assert main(["list", "models", "--plugin", str(plugin)]) == 0
    assert plugin_model in listed_names(capsys.readouterr().out)
    args = ["--plugin", str(plugin), "train", "--model", plugin_model, "--kernel-size", "3", "--epochs", "1",
            "--train-size", "200", "--checkpoint-dir", str(tmp_path / "ckpt"), "--quiet"]
    assert main(args) == 0
    output = capsys.readouterr().out
    assert ACCURACY.search(output) is not None
    assert Path(CHECKPOINT.search(output).group(1)).name.startswith(f"{plugin_model}_k3_none_s0_")  # type: ignore[union-attr]


def test_missing_plugin_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models", "--plugin", "does_not_exist.py"]) == 2
    assert "plugin file 'does_not_exist.py' does not exist" in capsys.readouterr().err


def test_a_long_cpu_training_is_announced_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from robustbench_win.train import obtain

    monkeypatch.setattr(obtain, "CPU_WARNING_SECONDS", 0.0)
    assert main(["train", *TRAIN_ARGS, "--checkpoint-dir", str(tmp_path / "ckpt")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("robustbench-win: warning: paper-cnn_k5_hamming_s0 is GPU-sized: training it on this CPU")
    assert "will take about" in err and "--device cuda" in err


def test_negative_seed_and_thread_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for flag, value, message in (("--seed", "-1", "expected an integer >= 0, got '-1'"),
                                 ("--threads", "0", "expected an integer >= 1, got '0'")):
        with pytest.raises(SystemExit) as info:
            main(["train", flag, value])
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_threads_sets_torch_threads(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["train", *TRAIN_ARGS, "--threads", "1", "--checkpoint-dir", str(tmp_path / "ckpt")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
