"""Speed options: validation, the "auto" rules, and that they leave training's results alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from robustbench_win.models import PaperCNN
from robustbench_win.train.checkpoints import ModelSpec
from robustbench_win.data.datasets import ImageData, load_dataset, subsample
from robustbench_win.train.speed import Accelerator, SpeedSettings, accelerated, resolve_speed_settings
from robustbench_win.suite import SuiteError, load_suite
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import seed_everything, train

GIB = 2**30
CIFAR10_TRAIN_BYTES = 50_000 * 3 * 32 * 32
AUTO = {"channels_last": "auto", "data_on_device": "auto", "compile": "auto"}
H100 = Accelerator("cuda", 80 * GIB, compiler=True)


@pytest.mark.parametrize(("accelerator", "train_bytes", "steps", "expected"), [
    (Accelerator("cpu"), CIFAR10_TRAIN_BYTES, 10**6, (False, False, False)),
    (H100, CIFAR10_TRAIN_BYTES, 150 * 1563, (True, True, True)),  # cifar10-paper: everything on
    (H100, CIFAR10_TRAIN_BYTES, 6 * 125, (True, True, False)),  # a short run does not pay for compiling
    (H100, 21 * GIB, 10**6, (True, False, True)),  # over a quarter of the GPU: data stay on the host
    (H100, 20 * GIB, 10**6, (True, True, True)),  # exactly a quarter still fits
    (Accelerator("cuda", 80 * GIB, compiler=False), 1000, 10**6, (True, True, False)),  # no triton
    (Accelerator("mps"), 1000, 10**6, (False, False, False)),
])
def test_auto_rules(accelerator: Accelerator, train_bytes: int, steps: int, expected: tuple[bool, bool, bool]) -> None:
    settings = resolve_speed_settings(AUTO, accelerator, train_bytes=train_bytes, total_steps=steps)
    assert (settings.channels_last, settings.data_on_device, settings.compile) == expected


def test_explicit_values_override_auto() -> None:
    on = resolve_speed_settings(dict.fromkeys(AUTO, True), Accelerator("cpu"), train_bytes=1, total_steps=1)
    off = resolve_speed_settings(dict.fromkeys(AUTO, False), H100, train_bytes=1, total_steps=10**6)
    assert on == SpeedSettings(True, True, True) and off == SpeedSettings()


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "Auto"])
def test_train_config_rejects_bad_toggles(value: object) -> None:
    for name in AUTO:
        with pytest.raises(ValueError, match=f"{name} must be true, false or 'auto', got {value!r}"):
            TrainConfig(**{name: value})  # type: ignore[arg-type]


def test_suite_overrides_reach_the_config() -> None:
    suite = load_suite("quick", ["train.compile=false", "train.channels_last=true", "train.data_on_device=auto"])
    assert (suite.train.compile, suite.train.channels_last, suite.train.data_on_device) == (False, True, "auto")
    with pytest.raises(SuiteError, match="'train.compile' must be true or false or one of 'auto', got 'sometimes'"):
        load_suite("quick", ["train.compile=sometimes"])


def test_speed_options_are_not_part_of_the_checkpoint_key() -> None:
    # The key fields as they were before the speed options existed: old checkpoints keep their keys.
    assert set(TrainConfig().as_dict()) == {"epochs", "batch_size", "lr", "momentum", "weight_decay", "milestones",
                                            "lr_gamma", "augment", "precision"}
    plain = ModelSpec("paper-cnn", {"kernel_size": 3}, "mnist5k", TrainConfig())
    fast = dataclasses.replace(plain, train=TrainConfig(channels_last=True, data_on_device=False, compile=True))
    bf16 = dataclasses.replace(plain, train=TrainConfig(precision="bf16"))
    assert fast.key() == plain.key() != bf16.key()


def test_accelerated_restores_the_default_memory_format() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    with accelerated(model, SpeedSettings(channels_last=True)) as fast:
        assert fast is model and model[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert not model[0].weight.is_contiguous()
    assert model[0].weight.is_contiguous()


@pytest.fixture(scope="module")
def digits() -> ImageData:
    data = subsample(load_dataset("mnist5k"), train_size=150, test_size=None)
    return dataclasses.replace(data, augment=True)


def trained(data: ImageData, **options: object) -> tuple[dict[str, torch.Tensor], list[float], SpeedSettings]:
    seed_everything(2)
    model = PaperCNN(in_channels=1, num_classes=10, kernel_size=5, depth=3, width=8, window="hamming")
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, milestones=(1,), **options)  # type: ignore[arg-type]
    result = train(model, data, config, seed=2, progress=False)
    assert all(t.is_contiguous() for t in model.state_dict().values())
    return model.state_dict(), result.epoch_losses, result.speed


def assert_rounding_noise(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    for name, weight in weights.items():
        if weight.is_floating_point():
            torch.testing.assert_close(weight, reference[name], rtol=1e-3, atol=1e-4, msg=name)


def test_data_on_device_on_the_cpu_is_bit_identical(digits: ImageData) -> None:
    default, losses, used = trained(digits)
    assert used == SpeedSettings()  # "auto" on the CPU: everything off
    placed, placed_losses, placed_used = trained(digits, data_on_device=True)
    assert placed_used.data_on_device and placed_losses == losses
    assert all(torch.equal(placed[name], default[name]) for name in default)


def test_channels_last_on_the_cpu_changes_weights_by_rounding_noise_only(digits: ImageData) -> None:
    default, losses, _ = trained(digits)
    channels_last, cl_losses, used = trained(digits, channels_last=True)
    assert used.channels_last
    assert_rounding_noise(channels_last, default)
    assert cl_losses == pytest.approx(losses, rel=1e-4)


def test_compiled_module_runs_full_batches_and_eager_runs_the_last(digits: ImageData,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    resets: list[bool] = []

    class Recording(nn.Module):  # stands in for torch.compile's wrapper: same parameters
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return self.inner(x)

    monkeypatch.setattr(torch, "compile", Recording)
    monkeypatch.setattr(torch.compiler, "reset", lambda: resets.append(True))
    default, losses, _ = trained(digits)
    weights, compiled_losses, used = trained(digits, compile=True)
    assert used.compile and resets == [True]
    assert calls == [32] * 4 * 2  # 150 = 4 x 32 + 22: the four full batches of each of 2 epochs
    assert compiled_losses == losses and all(torch.equal(weights[name], default[name]) for name in default)


@pytest.mark.slow
def test_torch_compile_on_the_cpu_changes_weights_by_rounding_noise_only(digits: ImageData) -> None:
    default, losses, _ = trained(digits)  # about 40 s of compiling on 2 cores
    compiled, compiled_losses, used = trained(digits, compile=True)
    assert used.compile
    assert_rounding_noise(compiled, default)
    assert compiled_losses == pytest.approx(losses, rel=1e-4)
