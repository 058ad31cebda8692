"""Training: augmentation, repeatability, configuration checks, bf16, and that it learns."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_win.models import PaperCNN
from robustbench_win.train import loop
from robustbench_win.data.datasets import ImageData, load_dataset, subsample
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import classify, evaluate, seed_everything, train

from batching import augment_batch, training_batches


@pytest.fixture(scope="module")
def mnist5k() -> ImageData:
    return load_dataset("mnist5k")


def synthetic_data(n_train: int = 64, n_test: int = 32, channels: int = 1, size: int = 12) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    return ImageData(
        name="synthetic", display_name="synthetic",
        train_images=torch.randint(0, 256, (n_train, channels, size, size), dtype=torch.uint8, generator=generator),
        train_labels=torch.arange(n_train) % 4,
        test_images=torch.randint(0, 256, (n_test, channels, size, size), dtype=torch.uint8, generator=generator),
        test_labels=torch.arange(n_test) % 4,
        num_classes=4, augment=False,
    )


# --------------------------------------------------------------------------- augmentation


def all_crops(image: torch.Tensor, padding: int) -> list[tuple[int, int, bool, torch.Tensor]]:
    """Every (top, left, flip) crop of a zero-padded ``(C, H, W)`` image, computed by hand."""
    _, height, width = image.shape
    padded = torch.zeros(image.shape[0], height + 2 * padding, width + 2 * padding, dtype=image.dtype)
    padded[:, padding : padding + height, padding : padding + width] = image
    crops = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + height, left : left + width]
            crops += [(top, left, False, crop), (top, left, True, crop.flip(-1))]
    return crops


def test_augment_batch_is_a_padded_crop_and_optional_flip() -> None:
    n, channels, height, width, padding = 300, 3, 6, 5, 2
    # Every pixel of every channel distinct and non-zero, so each crop/flip is recognisable.
    images = (torch.arange(n * channels * height * width, dtype=torch.float32) + 1).view(n, channels, height, width)
    out = augment_batch(images, torch.Generator().manual_seed(0), padding=padding)
    assert out.shape == images.shape and out.dtype == images.dtype

    seen = set()
    for index in range(n):
        matches = [(t, l, f) for t, l, f, crop in all_crops(images[index], padding) if torch.equal(crop, out[index])]
        assert len(matches) == 1, f"image {index} is not a padded crop (flipped or not) of its input"
        seen.add(matches[0])
    # All 5 x 5 offsets and both flips occur; the identity is one of them.
    assert {(t, l) for t, l, _ in seen} == {(t, l) for t in range(5) for l in range(5)}
    assert {f for _, _, f in seen} == {False, True}


def test_augment_batch_known_cases() -> None:
    image = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])[None]  # (1, 1, 3, 3)
    batch = image.repeat(64, 1, 1, 1)
    outputs = {tuple(o.flatten().tolist()) for o in augment_batch(batch, torch.Generator().manual_seed(1), padding=0)}
    # No padding: only the image and its left-right mirror.
    assert outputs == {(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0), (3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0)}
    shifted = {tuple(o.flatten().tolist()) for o in augment_batch(batch, torch.Generator().manual_seed(2), padding=1)}
    # Crop one pixel down and right, no flip: the bottom-right 2 x 2 moved to the top left.
    assert (5.0, 6.0, 0.0, 8.0, 9.0, 0.0, 0.0, 0.0, 0.0) in shifted
    assert len(shifted) == 18  # 3 x 3 offsets x 2 flips


def test_augment_batch_is_seeded() -> None:
    images = torch.rand(16, 3, 8, 8)
    first = augment_batch(images, torch.Generator().manual_seed(5))
    assert torch.equal(first, augment_batch(images, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, augment_batch(images, torch.Generator().manual_seed(6)))


def test_training_batches_cover_the_split_once() -> None:
    data = synthetic_data(n_train=70)
    batches = list(training_batches(data, 32, torch.Generator().manual_seed(0), augment=False))
    assert [len(labels) for _, labels in batches] == [32, 32, 6]
    images = torch.cat([b for b, _ in batches])
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    # Every training image exactly once, shuffled.
    flat = (images * 255).round().to(torch.uint8).flatten(1)
    order = [next(i for i in range(70) if torch.equal(flat[j], data.train_images[i].flatten())) for j in range(70)]
    assert sorted(order) == list(range(70)) and order != list(range(70))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", -1, "epochs must be an integer >= 0"),
    ("epochs", 2.5, "epochs must be an integer >= 0"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("batch_size", 8.0, "batch_size must be an integer >= 1"),
    ("lr", 0.0, "lr must be positive"),
    ("lr", -0.1, "lr must be positive"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
    ("momentum", -0.5, r"momentum must be in \[0, 1\)"),
    ("weight_decay", -1e-4, "weight_decay must be >= 0"),
    ("precision", "fp16", "precision must be one of fp32, bf16, got 'fp16'"),
])
def test_train_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_train_config_defaults_and_plain_dict() -> None:
    config = TrainConfig(milestones=[3, 5])  # type: ignore[arg-type]
    assert config.milestones == (3, 5)
    plain = config.as_dict()
    assert plain["milestones"] == [3, 5] and plain["precision"] == "fp32"
    # Every field but the speed options (they do not change what is computed).
    speed_options = {"channels_last", "data_on_device", "compile"}
    assert set(plain) == {f.name for f in dataclasses.fields(TrainConfig)} - speed_options
    assert config.speed_options() == dict.fromkeys(speed_options, "auto")
    defaults = TrainConfig()  # the authors' recipe
    assert (defaults.epochs, defaults.batch_size, defaults.lr, defaults.momentum, defaults.weight_decay,
            defaults.milestones) == (150, 32, 0.01, 0.9, 1e-3, (75, 120))


# --------------------------------------------------------------------------- training


def small_model(seed: int, **kwargs: object) -> nn.Module:
    seed_everything(seed)
    return PaperCNN(**({"in_channels": 1, "num_classes": 10, "kernel_size": 3, "depth": 3, "width": 8} | kwargs))


def test_training_is_repeatable(mnist5k: ImageData) -> None:
    data = subsample(mnist5k, train_size=300, test_size=None)
    config = TrainConfig(epochs=1, batch_size=32, lr=0.05, milestones=(), augment=True)
    weights = []
    for seed in (0, 0, 1):
        model = small_model(seed, window="hamming")
        result = train(model, data, config, seed=seed, progress=False)
        assert len(result.epoch_losses) == 1 and result.images_per_second > 0
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), f"{key} differs between two runs with the same seed"
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0] if weights[0][k].is_floating_point())


def test_training_updates_weights_and_returns_eval_mode() -> None:
    data = synthetic_data()
    model = small_model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, data, TrainConfig(epochs=1, batch_size=16, milestones=()), seed=0, progress=False)
    assert not model.training
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], model.state_dict()[k])]
    assert "features.0.weight" in changed and "classifier.weight" in changed


def test_learning_rate_schedule_follows_milestones(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    original = loop.train_step

    def recording_step(model, optimizer, images, labels, precision):  # type: ignore[no-untyped-def]
        seen.append(optimizer.param_groups[0]["lr"])
        return original(model, optimizer, images, labels, precision)

    monkeypatch.setattr(loop, "train_step", recording_step)
    config = TrainConfig(epochs=4, batch_size=64, lr=0.1, milestones=(1, 3), lr_gamma=0.5)
    train(small_model(0), synthetic_data(n_train=64), config, seed=0, progress=False)
    assert seen == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_bf16_training_step_keeps_an_fp32_model() -> None:
    data = synthetic_data(n_train=32)
    model = small_model(0)
    before = model.classifier.weight.detach().clone()
    result = train(model, data, TrainConfig(epochs=1, batch_size=32, milestones=(), precision="bf16"), seed=0,
                   progress=False)
    assert len(result.epoch_losses) == 1 and torch.isfinite(torch.tensor(result.epoch_losses)).all()
    assert not torch.equal(before, model.classifier.weight)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    images, _ = data.test_tensors()
    with torch.no_grad():
        logits = model(images)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert classify(model, images).dtype == torch.int64


def test_bf16_is_refused_where_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "bf16_autocast_available", lambda device: False)
    with pytest.raises(ValueError, match="bf16 autocast is not supported on cpu"):
        train(small_model(0), synthetic_data(), TrainConfig(epochs=1, precision="bf16"), seed=0, progress=False)


def test_classify_and_evaluate() -> None:
    data = synthetic_data(n_test=37)
    model = small_model(0).train()
    images, labels = data.test_tensors()
    everything = classify(model, images)
    assert model.training  # mode restored
    assert torch.equal(everything, classify(model, images, batch_size=5))
    model.eval()
    with torch.no_grad():
        assert torch.equal(everything, model(images).argmax(1))
    correct = evaluate(model, data, batch_size=10)
    assert correct.dtype == torch.bool and correct.shape == (37,)
    assert torch.equal(correct, everything == labels)
    assert classify(model, images[:0]).shape == (0,)


def test_paper_cnn_learns_mnist5k_in_a_few_epochs(mnist5k: ImageData) -> None:
    # The quick version of the next test: 2,000 digits, 3 epochs, about 2 s on one core (92 % measured).
    model = small_model(0, kernel_size=5, depth=3, width=16, window="none")
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, weight_decay=5e-4, milestones=(2,))
    result = train(model, subsample(mnist5k, train_size=2000, test_size=None), config, seed=0, progress=False)
    assert float(evaluate(model, mnist5k).float().mean()) >= 0.9
    assert result.epoch_losses[-1] < result.epoch_losses[0] / 3


@pytest.mark.slow
def test_paper_cnn_learns_mnist5k(mnist5k: ImageData) -> None:
    # A CPU-sized recipe: 4,000 digits, 6 epochs, about 10 s on one core.
    model = small_model(0, kernel_size=5, depth=4, width=16, window="none")
    config = TrainConfig(epochs=6, batch_size=64, lr=0.05, weight_decay=5e-4, milestones=(4,))
    start = time.perf_counter()
    result = train(model, mnist5k, config, seed=0, progress=False)
    accuracy = float(evaluate(model, mnist5k).float().mean())
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f} after {time.perf_counter() - start:.0f} s"
    assert result.epoch_losses[-1] < result.epoch_losses[0] / 4
    assert F.cross_entropy(model(mnist5k.test_tensors()[0][:200]), mnist5k.test_labels[:200]).item() < 0.5
