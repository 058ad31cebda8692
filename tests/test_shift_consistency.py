"""Shift consistency (Zhang, ICML 2019) against models whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from robustbench_win.measure.shift_consistency import (
    GRID_COLUMNS,
    SAMPLE_COLUMNS,
    consistency,
    grid_shifts,
    random_shift_pair,
    shift_accuracy_table,
    shift_consistency,
)

SIZE = 16
PIXEL = (8, 9)  # (row, column) read by the fixed-pixel model


class FixedPixel(nn.Module):
    """Class 0 when the pixel at PIXEL is above 0.5, else class 1."""

    def forward(self, x: Tensor) -> Tensor:
        value = x[:, 0, PIXEL[0], PIXEL[1]]
        return torch.stack([value, 1.0 - value], dim=1)


def pooled_classifier() -> nn.Module:
    """Per-pixel features and a global average pool: invariant to any shift that loses no content.

    Logits (mean of x, 0.03): class 0 for images brighter than that on average.
    """
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 0.0]).view(2, 1, 1, 1))
        model[0].bias.copy_(torch.tensor([0.0, 0.03]))
        model[4].weight.copy_(torch.eye(2))
        model[4].bias.zero_()
    return model


def random_images(n: int, *, margin: int = 0, seed: int = 0, dim: bool = False) -> tuple[Tensor, Tensor]:
    """Uniform noise inside a zero margin; ``dim``: each image scaled by a random brightness."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, SIZE, SIZE)
    inner = SIZE - 2 * margin
    brightness = torch.rand(n, 1, 1, 1, generator=generator) if dim else torch.ones(n, 1, 1, 1)
    noise = torch.rand(n, 1, inner, inner, generator=generator)
    images[:, :, margin:SIZE - margin, margin:SIZE - margin] = brightness * noise
    return images, torch.randint(0, 2, (n,), generator=generator)


def fixed_pixel_prediction(images: Tensor, dx: int, dy: int) -> np.ndarray:
    """By hand: after shifting dx right and dy down, PIXEL holds the input at (row - dy, col - dx)."""
    row, col = PIXEL[0] - dy, PIXEL[1] - dx
    value = images[:, 0, row, col].numpy() if 0 <= row < SIZE and 0 <= col < SIZE else np.zeros(len(images))
    return np.where(value > 0.5, 0, 1)


def test_pooled_classifier_is_fully_consistent() -> None:
    images, labels = random_images(40, margin=4, dim=True)  # content stays inside under shifts of 3
    result = shift_consistency(pooled_classifier(), images, labels, seed=0)
    assert result.samples["pred_a"].nunique() > 1  # not a constant classifier
    assert result.consistency == 100.0
    accuracy = shift_accuracy_table(result.grid)["accuracy"]
    assert accuracy.nunique() == 1  # the same under every shift


def test_fixed_pixel_model_matches_hand_computed_shifts() -> None:
    images, labels = random_images(60)
    result = shift_consistency(FixedPixel(), images, labels, seed=3)
    samples = result.samples
    assert list(samples.columns) == list(SAMPLE_COLUMNS)
    for side in ("a", "b"):
        expected = [fixed_pixel_prediction(images[i:i + 1], dx, dy)[0]
                    for i, (dx, dy) in enumerate(zip(samples[f"dx_{side}"], samples[f"dy_{side}"], strict=True))]
        assert samples[f"pred_{side}"].tolist() == expected
    # Two different source pixels of uniform noise agree half of the time.
    assert 25.0 < result.consistency < 75.0


def test_grid_accuracy_matches_hand_computation() -> None:
    images, labels = random_images(30, seed=1)
    result = shift_consistency(FixedPixel(), images, labels, seed=0, max_shift=2)
    assert list(result.grid.columns) == list(GRID_COLUMNS)
    table = shift_accuracy_table(result.grid)
    assert len(table) == 25 and (table["n_samples"] == 30).all()
    for row in table.itertuples():
        correct = fixed_pixel_prediction(images, row.dx, row.dy) == labels.numpy()
        assert row.n_correct == correct.sum()
        assert row.accuracy == pytest.approx(100.0 * correct.mean())


def test_shift_pairs_are_distinct_bounded_and_cover_the_ring() -> None:
    pairs = [random_shift_pair(0, index) for index in range(2000)]
    seen = set()
    for dx_a, dy_a, dx_b, dy_b in pairs:
        assert (dx_a, dy_a) != (dx_b, dy_b)
        for dx, dy in ((dx_a, dy_a), (dx_b, dy_b)):
            assert 1 <= max(abs(dx), abs(dy)) <= 3
            seen.add((dx, dy))
    assert len(seen) == 7 * 7 - 1


def test_seeds_reproduce_and_differ() -> None:
    assert [random_shift_pair(5, i) for i in range(20)] == [random_shift_pair(5, i) for i in range(20)]
    assert [random_shift_pair(5, i) for i in range(20)] != [random_shift_pair(6, i) for i in range(20)]


def test_shifts_are_paired_across_models_batches_and_subsets() -> None:
    images, labels = random_images(20, seed=2)
    indices = list(range(100, 120))
    shift_columns = ["index", "dx_a", "dy_a", "dx_b", "dy_b"]
    one = shift_consistency(FixedPixel(), images, labels, indices, seed=1, batch_size=7).samples
    other = shift_consistency(pooled_classifier(), images, labels, indices, seed=1, batch_size=64).samples
    assert one[shift_columns].equals(other[shift_columns])
    subset = [13, 2, 7]
    part = shift_consistency(FixedPixel(), images[subset], labels[subset], [indices[i] for i in subset], seed=1).samples
    assert part.reset_index(drop=True).equals(one.iloc[subset].reset_index(drop=True))


def test_model_is_left_as_found() -> None:
    model = pooled_classifier().train()
    images, labels = random_images(4)
    shift_consistency(model, images, labels, seed=0)
    assert model.training


def test_grid_and_empty_input() -> None:
    assert grid_shifts(1) == [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1)]
    empty = shift_consistency(FixedPixel(), torch.zeros(0, 1, SIZE, SIZE), torch.zeros(0, dtype=torch.long), seed=0)
    assert len(empty.samples) == 0 and len(empty.grid) == 0
    assert np.isnan(consistency(empty.samples))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": 0, "max_shift": 0}, "max_shift must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    images, labels = random_images(2)
    with pytest.raises(ValueError, match=message):
        shift_consistency(FixedPixel(), images, labels, **kwargs)


def test_integer_shift_moves_pixels_as_the_spatial_warp_does() -> None:
    from robustbench_win.attacks.spatial import warp
    from robustbench_win.measure.shift_consistency import integer_shift

    x = torch.rand(3, 2, 9, 7, generator=torch.Generator().manual_seed(0))
    for dx in range(-3, 4):
        for dy in range(-3, 4):
            expected = warp(x, 0.0, float(dx), float(dy))
            assert torch.allclose(integer_shift(x, dx, dy), expected, atol=1e-6), (dx, dy)
    # Hand-checked: a single pixel one step right and two down.
    one = torch.zeros(1, 1, 4, 4)
    one[0, 0, 1, 1] = 1.0
    moved = integer_shift(one, 1, 2)
    assert moved[0, 0, 3, 2] == 1.0 and moved.sum() == 1.0
