"""The batch pipeline: same batches as the original per-batch code, on any placement.

The reference below is the training-data code as it was before batches could be held on the
training device (float conversion first, then per-batch crop draws). CPU training must keep
giving the same weights for the same seed, so the new pipeline must match it bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from robustbench_win.models import PaperCNN
from robustbench_win.train.batches import BatchSource, CropDraws, crop_and_flip, draw_epoch
from robustbench_win.data.datasets import ImageData, load_dataset, subsample
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import seed_everything, train

from batching import augment_batch, training_batches


def reference_augment(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    n, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    flip = torch.rand(n, 1, generator=generator) < 0.5
    rows = top + torch.arange(height)
    cols = left + torch.where(flip, torch.arange(width - 1, -1, -1), torch.arange(width))
    return padded[torch.arange(n)[:, None, None, None], torch.arange(channels)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def reference_batches(data: ImageData, batch_size: int, generator: torch.Generator,
                      augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(data.train_labels), generator=generator)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        images = data.train_images[index].float().div_(255.0)
        if augment:
            images = reference_augment(images, generator)
        yield images, data.train_labels[index]


def colour_data(n_train: int = 70, size: int = 10) -> ImageData:
    generator = torch.Generator().manual_seed(3)
    return ImageData(
        name="colour", display_name="colour",
        train_images=torch.randint(0, 256, (n_train, 3, size, size), dtype=torch.uint8, generator=generator),
        train_labels=torch.arange(n_train) % 5,
        test_images=torch.zeros(4, 3, size, size, dtype=torch.uint8), test_labels=torch.arange(4),
        num_classes=5, augment=True,
    )


def assert_same_batches(actual: list[tuple[torch.Tensor, torch.Tensor]],
                        expected: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    assert len(actual) == len(expected)
    for (images, labels), (ref_images, ref_labels) in zip(actual, expected):
        assert images.dtype == torch.float32 and torch.equal(images, ref_images)
        assert torch.equal(labels, ref_labels)


@pytest.mark.parametrize("augment", [False, True])
def test_epochs_match_the_reference_bit_for_bit(augment: bool) -> None:
    data = colour_data()
    new, old = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(2):  # the generator carries over between epochs in both
        assert_same_batches(list(training_batches(data, 32, new, augment)),
                            list(reference_batches(data, 32, old, augment)))
    assert torch.equal(torch.rand(3, generator=new), torch.rand(3, generator=old))  # same draws consumed


def test_channels_last_batches_hold_the_same_values() -> None:
    data = colour_data()
    source = BatchSource(data.train_images, data.train_labels, channels_last=True)
    batches = list(source.epoch(16, torch.Generator().manual_seed(1), augment=True))
    assert all(images.is_contiguous(memory_format=torch.channels_last) for images, _ in batches)
    assert_same_batches(batches, list(reference_batches(data, 16, torch.Generator().manual_seed(1), augment=True)))


def test_augment_batch_keeps_the_reference_stream() -> None:
    images = torch.rand(9, 2, 7, 6)
    assert torch.equal(augment_batch(images, torch.Generator().manual_seed(4)),
                       reference_augment(images, torch.Generator().manual_seed(4)))


def test_crop_and_flip_on_uint8_equals_cropping_floats() -> None:
    # Cropping before the float conversion (as the device path does) changes nothing: padding is 0 either way.
    pixels = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    draws = CropDraws(torch.tensor([[0], [8], [4], [2], [8]]), torch.tensor([[8], [0], [4], [6], [8]]),
                      torch.tensor([[True], [False], [True], [False], [True]]))
    assert torch.equal(crop_and_flip(pixels, draws).float() / 255, crop_and_flip(pixels.float() / 255, draws))
    # Hand check of one crop: top 8, left 0, no flip = bottom-left corner shifted up 4 and right 4.
    expected = torch.zeros(3, 8, 8, dtype=torch.uint8)
    expected[:, :4, 4:] = pixels[1, :, 4:, :4]
    assert torch.equal(crop_and_flip(pixels, draws)[1], expected)


def test_draw_epoch_sizes_and_ranges() -> None:
    draws = draw_epoch(70, 32, torch.Generator().manual_seed(0), augment=True)
    assert sorted(draws.order.tolist()) == list(range(70))
    assert draws.crops is not None and draws.crops.top.shape == (70, 1) and draws.crops.flip.dtype == torch.bool
    assert set(draws.crops.top.flatten().tolist()) <= set(range(9))
    assert draw_epoch(70, 32, torch.Generator().manual_seed(0), augment=False).crops is None


def test_batch_source_rejects_float_images() -> None:
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\) uint8, got \(2, 1, 3, 3\) torch.float32"):
        BatchSource(torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.long))


def reference_train(model: torch.nn.Module, data: ImageData, config: TrainConfig, seed: int) -> list[float]:
    """The training loop as it was: per-batch float losses summed on the host."""
    generator = seed_everything(seed)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.lr_gamma)
    losses = []
    for _ in range(config.epochs):
        total, seen = 0.0, 0
        for images, labels in reference_batches(data, config.batch_size, generator, data.augment):
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        scheduler.step()
        losses.append(total / seen)
    return losses


def test_cpu_training_matches_the_reference_loop_bit_for_bit() -> None:
    data = dataclasses.replace(subsample(load_dataset("mnist5k"), train_size=200, test_size=None), augment=True)
    config = TrainConfig(epochs=2, batch_size=48, lr=0.05, milestones=(1,))  # 200 = 4 x 48 + 8: a short last batch
    models = []
    for _ in range(2):
        seed_everything(5)
        models.append(PaperCNN(in_channels=1, num_classes=10, kernel_size=5, depth=3, width=8, window="hamming"))
    result = train(models[0], data, config, seed=5, progress=False)
    expected_losses = reference_train(models[1], data, config, seed=5)
    assert result.epoch_losses == expected_losses
    for (name, weight), reference in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(weight, reference), f"{name} differs from the reference loop"
