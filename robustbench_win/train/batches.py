"""Training batches from in-memory uint8 images, on the CPU or held on the training device.

The whole training split stays as ``(N, C, H, W)`` uint8 pixels on one device (the CPU, or
the GPU with ``data_on_device``). Each batch is sliced, cropped and flipped there and only
then turned into float32, so the GPU never waits for the host to build a batch.

Repeatability: the random draws (shuffle order, crop offsets, flips) always come from the
CPU generator of :func:`robustbench_win.train.loop.seed_everything`, in the same order as the
original per-batch code, and the uint8 -> float conversion is a 256-entry table computed by
:func:`robustbench_win.data.datasets.to_float` on the CPU. Cropping, flipping and table look-up
only move values, so a batch is bit for bit the same on every device and placement.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_win.data.datasets import to_float

CROP_PADDING = 4  # pixels of zero padding for the random crop (the CIFAR recipe)


@dataclass(frozen=True)
class CropDraws:
    """Random crop offsets and flips of a batch: ``(n, 1)`` tensors.

    Attributes:
        top: First padded row of each crop, in ``0 .. 2 * padding``.
        left: First padded column of each crop, in ``0 .. 2 * padding``.
        flip: Whether each crop is mirrored left-right.
    """

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor

    def __getitem__(self, rows: slice) -> CropDraws:
        return CropDraws(self.top[rows], self.left[rows], self.flip[rows])

    def to(self, device: torch.device) -> CropDraws:
        return CropDraws(self.top.to(device), self.left.to(device), self.flip.to(device))


def draw_crops(n: int, generator: torch.Generator, padding: int = CROP_PADDING) -> CropDraws:
    """Draw crop offsets and flips for ``n`` images (in this order: tops, lefts, flips)."""
    top = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    flip = torch.rand(n, 1, generator=generator) < 0.5
    return CropDraws(top, left, flip)


def crop_and_flip(images: torch.Tensor, draws: CropDraws, padding: int = CROP_PADDING) -> torch.Tensor:
    """Zero-pad a ``(N, C, H, W)`` batch (any dtype, any device) and take each image's crop.

    ``draws`` must be on the device of ``images``.
    """
    n, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = draws.top + torch.arange(height, device=device)  # (n, H)
    ascending = torch.arange(width, device=device)
    cols = draws.left + torch.where(draws.flip, ascending.flip(0), ascending)  # (n, W)
    # Advanced indexing crops (and flips) every image at its own offset in one gather.
    return padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


@dataclass(frozen=True)
class EpochDraws:
    """Every random draw of one epoch, made up front on the CPU.

    Attributes:
        order: ``(N,)`` shuffled image indices.
        crops: The crops of all batches, concatenated in batch order (``None``: no augmentation).
    """

    order: torch.Tensor
    crops: CropDraws | None


def draw_epoch(num_images: int, batch_size: int, generator: torch.Generator, augment: bool) -> EpochDraws:
    """Shuffle, then draw each batch's crops, consuming ``generator`` exactly as per-batch code would."""
    order = torch.randperm(num_images, generator=generator)
    if not augment:
        return EpochDraws(order, None)
    sizes = [min(batch_size, num_images - start) for start in range(0, num_images, batch_size)]
    per_batch = [draw_crops(size, generator) for size in sizes]
    crops = CropDraws(*(torch.cat([getattr(d, name) for d in per_batch]) for name in ("top", "left", "flip")))
    return EpochDraws(order, crops)


class BatchSource:
    """The training split as uint8 tensors on ``storage``, served as float batches on ``target``.

    Args:
        images: ``(N, C, H, W)`` uint8 training pixels.
        labels: ``(N,)`` int64 labels.
        storage: Where the uint8 split is held and batches are built (``target`` for
            device-resident data, the CPU otherwise).
        target: Where the batches are delivered (the training device).
        channels_last: Deliver images in channels-last memory format (same values).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        storage: torch.device | str = "cpu",
        target: torch.device | str = "cpu",
        channels_last: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
        self.storage, self.target = torch.device(storage), torch.device(target)
        self.images = images.to(self.storage)
        self.labels = labels.to(self.storage)
        # to_float of every uint8 value, computed on the CPU, so look-ups match it exactly anywhere.
        self.pixel_values = to_float(torch.arange(256, dtype=torch.uint8)).to(self.storage)
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(
        self, batch_size: int, generator: torch.Generator, augment: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled ``(images, labels)`` batches, float32 in [0, 1], the last one smaller.

        Every draw of the epoch is made from ``generator`` when the first batch is asked for.
        """
        draws = draw_epoch(len(self), batch_size, generator, augment)
        order = draws.order.to(self.storage)
        crops = draws.crops.to(self.storage) if draws.crops is not None else None
        for start in range(0, len(order), batch_size):
            rows = slice(start, start + batch_size)
            index = order[rows]
            pixels = self.images[index]  # (n, C, H, W) uint8
            if crops is not None:
                pixels = crop_and_flip(pixels, crops[rows])
            yield self._deliver(self.pixel_values[pixels.long()]), self.labels[index].to(self.target)

    def _deliver(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.target)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
