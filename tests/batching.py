"""The training batches as two plain functions, for tests that check them against a reference.

Training itself draws its batches from :class:`robustbench_win.train.batches.BatchSource`; these
are the same calls on the CPU, named for what the tests compare.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from robustbench_win.data.datasets import ImageData
from robustbench_win.train.batches import CROP_PADDING, BatchSource, crop_and_flip, draw_crops


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a ``(N, C, H, W)`` batch (CPU draws)."""
    draws = draw_crops(len(images), generator, padding).to(images.device)
    return crop_and_flip(images, draws, padding)


def training_batches(
    data: ImageData, batch_size: int, generator: torch.Generator, augment: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled float batches in [0, 1] on the CPU (the last, smaller batch included)."""
    return BatchSource(data.train_images, data.train_labels).epoch(batch_size, generator, augment)
