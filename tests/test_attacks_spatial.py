"""Spatial attacks: the warp's geometry, the grid search, and the foolbox and ART peers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from robustbench_win.attacks import ArtSpatial, FoolboxSpatial, SpatialGrid, SpatialRandom, grid_transforms, warp
from robustbench_win.attacks.art_backend import art_classifier, art_to_warp
from robustbench_win.attacks.foolbox_backend import foolbox_to_warp
from robustbench_win.attacks.spatial import SpatialGridParameters
from robustbench_win.attacks.spatial import first_fooling, magnitude

# foolbox 3.3 calls torch.meshgrid without ``indexing`` (its default is what it needs).
pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid. in an upcoming release:UserWarning")


# --------------------------------------------------------------------------- the warp


def _dot(size=(28, 28), row=14, col=20):
    x = torch.zeros(1, 1, *size)
    x[0, 0, row, col] = 1.0
    return x


def _centroid(x):
    """(row, col) intensity centroid of each image of a (N, 1, H, W) batch."""
    h, w = x.shape[-2:]
    mass = x.sum(dim=(1, 2, 3))
    rows = (x * torch.arange(h, dtype=x.dtype).view(h, 1)).sum(dim=(1, 2, 3)) / mass
    cols = (x * torch.arange(w, dtype=x.dtype).view(1, w)).sum(dim=(1, 2, 3)) / mass
    return torch.stack([rows, cols], dim=1)


def test_identity_returns_the_input_exactly(digits_test_batch):
    images = digits_test_batch[0][:4]
    assert torch.equal(warp(images, 0.0, 0.0, 0.0), images)


@pytest.mark.parametrize("size", [(28, 28), (20, 32)])
def test_a_translation_of_one_moves_the_content_one_pixel(size):
    x = torch.rand(2, 3, *size)
    right = warp(x, 0.0, 1.0, 0.0)
    down = warp(x, 0.0, 0.0, 2.0)
    torch.testing.assert_close(right[..., 1:], x[..., :-1], atol=1e-5, rtol=0)
    assert right[..., 0].abs().max() < 1e-5  # zero padding comes in from the left
    torch.testing.assert_close(down[..., 2:, :], x[..., :-2, :], atol=1e-5, rtol=0)
    assert down[..., :2, :].abs().max() < 1e-5


def test_positive_angles_rotate_counter_clockwise_about_the_centre(digits_test_batch):
    images = digits_test_batch[0][:4]
    # torch.rot90 with k=1 over (rows, cols) is a counter-clockwise quarter turn as displayed.
    torch.testing.assert_close(warp(images, 90.0, 0.0, 0.0), torch.rot90(images, 1, (2, 3)), atol=1e-5, rtol=0)
    moved = warp(_dot(row=14, col=20), 90.0, 0.0, 0.0)  # 6.5 px right of the centre 13.5
    torch.testing.assert_close(_centroid(moved), torch.tensor([[7.0, 14.0]]), atol=1e-4, rtol=0)  # now above


def test_rotation_then_translation_in_the_image_frame():
    x = _dot(row=14, col=20)
    moved = warp(x, 90.0, 2.0, -1.0)
    torch.testing.assert_close(_centroid(moved), torch.tensor([[7.0 - 1.0, 14.0 + 2.0]]), atol=1e-4, rtol=0)


def test_per_sample_transforms_in_one_batch(digits_test_batch):
    images = digits_test_batch[0][:3]
    angle, dx, dy = torch.tensor([0.0, 10.0, -20.0]), torch.tensor([1.0, -1.5, 0.0]), torch.tensor([0.0, 3.0, -2.0])
    together = warp(images, angle, dx, dy)
    one_by_one = torch.cat([warp(images[i:i + 1], angle[i], dx[i], dy[i]) for i in range(3)])
    torch.testing.assert_close(together, one_by_one)
    assert together.min() >= 0 and together.max() <= 1


# --------------------------------------------------------------------------- grid order


def test_grid_has_775_transforms_ordered_by_magnitude():
    grid = grid_transforms()
    assert grid.shape == (775, 3)
    assert torch.equal(grid[0], torch.zeros(3, dtype=torch.float64))  # identity first
    assert len({tuple(row.tolist()) for row in grid}) == 775
    assert set(grid[:, 0].tolist()) == set(np.linspace(-30, 30, 31).tolist())
    assert set(grid[:, 1].tolist()) == set(grid[:, 2].tolist()) == {-3.0, -1.5, 0.0, 1.5, 3.0}
    keys = magnitude(grid, 30.0, 3.0)
    assert torch.all(keys[1:] >= keys[:-1] - 1e-12)
    assert grid[-1].abs().tolist() == [30.0, 3.0, 3.0]


def test_every_grid_attack_holds_one_validated_grid_parameter_object():
    grid = SpatialGridParameters(max_translation=2, max_rotation=10, num_translations=3, num_rotations=7)
    assert grid.size == 7 * 3 * 3 and grid.max_translation == 2.0 and isinstance(grid.max_translation, float)
    assert grid.angles().tolist() == pytest.approx([-10, -20 / 3, -10 / 3, 0, 10 / 3, 20 / 3, 10])
    for cls in (SpatialGrid, FoolboxSpatial, ArtSpatial):
        assert cls(max_translation=2, max_rotation=10, num_translations=3, num_rotations=7).grid == grid
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.num_rotations = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="num_translations must be a positive integer"):
        SpatialGridParameters(num_translations=0)


# --------------------------------------------------------------------------- on real digits


@pytest.fixture(scope="module")
def spatial_runs(trained_digits_model, digits_test_batch):
    images, labels = digits_test_batch
    return {attack.name: attack(trained_digits_model, images, labels, batch_size=256)
            for attack in (SpatialGrid(), FoolboxSpatial(), SpatialRandom())}


def _fooled(results):
    return np.array([r.success for r in results if r.attacked])


def test_grid_lowers_accuracy(spatial_runs):
    results = spatial_runs["spatial-grid"]
    clean = np.mean([r.clean_pred == r.label for r in results])
    robust = np.mean([r.attacked and not r.success for r in results])
    assert clean > 0.85 and robust < clean - 0.3


def test_recorded_transforms_really_fool(spatial_runs, trained_digits_model, digits_test_batch):
    images, labels = digits_test_batch
    for name in ("spatial-grid", "spatial-random", "spatial-foolbox"):
        for i, result in enumerate(spatial_runs[name]):
            if not result.attacked:
                continue
            if not result.success:
                assert result.angle is None and torch.equal(result.x_adv, images[i])
                continue
            again = warp(images[i:i + 1], result.angle, result.dx, result.dy)
            torch.testing.assert_close(again[0], result.x_adv, atol=1e-5, rtol=0)
            with torch.no_grad():
                assert int(trained_digits_model(again).argmax()) != int(labels[i]), (name, i)


def test_grid_robust_samples_survive_every_transform(spatial_runs, trained_digits_model, digits_test_batch):
    images, labels = digits_test_batch
    grid = grid_transforms()
    robust = [i for i, r in enumerate(spatial_runs["spatial-grid"]) if r.attacked and not r.success]
    assert robust, "expected a few grid-robust digits"
    for i in robust:  # a plain exhaustive loop, independent of the batched early-stopping search
        with torch.no_grad():
            pred = trained_digits_model(warp(images[i:i + 1].expand(len(grid), -1, -1, -1), *grid.unbind(1))).argmax(1)
        assert torch.all(pred == labels[i])
        assert spatial_runs["spatial-grid"][i].iterations == 775


def test_grid_records_the_smallest_fooling_transform(spatial_runs, trained_digits_model, digits_test_batch):
    images, labels = digits_test_batch
    grid = grid_transforms()
    fooled = [i for i, r in enumerate(spatial_runs["spatial-grid"]) if r.success][:12]
    for i in fooled:
        result = spatial_runs["spatial-grid"][i]
        before = grid[:result.iterations]  # the fooling transform is the last of these
        assert before[-1].tolist() == [result.angle, result.dx, result.dy]
        with torch.no_grad():
            pred = trained_digits_model(warp(images[i:i + 1].expand(len(before), -1, -1, -1), *before.unbind(1))).argmax(1)
        assert torch.all(pred[:-1] == labels[i]) and pred[-1] != labels[i]


# --------------------------------------------------------------------------- foolbox


@pytest.mark.parametrize(("angle", "dx", "dy"), [(0, 1, 0), (0, 0, -3), (10, 1.5, -3), (-30, 3, 3), (17, 0, 0)])
def test_foolbox_transform_is_our_warp_after_conversion(digits_test_batch, angle, dx, dy):
    import eagerpy as ep
    from foolbox.attacks.spatial_attack_transformations import rotate_and_shift

    images = digits_test_batch[0][:8]
    theirs = rotate_and_shift(ep.astensor(images), translation=(dx, dy), rotation=angle).raw
    ours = warp(images, *foolbox_to_warp(angle, dx, dy, images.shape[-2:]))
    torch.testing.assert_close(ours, theirs.clamp(0, 1), atol=1e-5, rtol=0)


def test_foolbox_units_and_signs():
    # foolbox's "+1 px in x" moves the content LEFT by 27/28 px on 28x28 images; its rotation
    # sign is ours; its translation turns with the image.
    assert foolbox_to_warp(0.0, 1.0, 0.0, (28, 28)) == pytest.approx((0.0, -27 / 28, 0.0))
    assert foolbox_to_warp(0.0, 0.0, 3.0, (28, 28)) == pytest.approx((0.0, 0.0, -3 * 27 / 28))
    angle, dx, dy = foolbox_to_warp(90.0, 1.0, 0.0, (28, 28))
    assert (angle, dx, dy) == pytest.approx((90.0, 0.0, 27 / 28))


def test_our_search_on_foolbox_grid_reproduces_foolbox(spatial_runs, trained_digits_model, digits_test_batch):
    # Same transforms in the same order -> same fooled samples and the same first transform:
    # the batched early-stopping search is equivalent to foolbox's loop.
    images, labels = digits_test_batch
    foolbox = spatial_runs["spatial-foolbox"]
    rows = [i for i, r in enumerate(foolbox) if r.attacked]
    fb_grid = FoolboxSpatial().foolbox_grid()
    converted = torch.tensor([foolbox_to_warp(*t, images.shape[-2:]) for t in fb_grid], dtype=torch.float64)
    with torch.no_grad():
        position = first_fooling(trained_digits_model, images[rows], labels[rows],
                                 converted.expand(len(rows), -1, -1), budget=512)
    expected = torch.tensor([foolbox[i].iterations - 1 if foolbox[i].success else -1 for i in rows])
    assert (position == expected).float().mean() >= 0.98


def test_grid_agrees_with_foolbox_up_to_the_grid_geometry(spatial_runs):
    # The default grids are not the same set of transforms: foolbox's translations are
    # 27/28 px, reversed and turned with the rotation (see FoolboxSpatial). Pure rotations
    # are in both grids, so a sample fooled by only one of the two must need a translation.
    ours, foolbox = spatial_runs["spatial-grid"], spatial_runs["spatial-foolbox"]
    a, b = _fooled(ours), _fooled(foolbox)
    assert (a == b).mean() >= 0.95
    for mine, theirs in zip(ours, foolbox):
        if mine.attacked and mine.success != theirs.success:
            winner = mine if mine.success else theirs
            assert (winner.dx, winner.dy) != (0.0, 0.0)


@pytest.mark.slow
def test_grid_agrees_with_foolbox_on_all_held_out_digits(trained_digits_model, digits_data):
    # Measured on the 1,000 held-out digits (923 attacked): 97.4 % agreement, 16 samples fooled
    # only by our grid and 8 only by foolbox's, each of them by a transform with a translation.
    images, labels = digits_data.test_images, digits_data.test_labels
    ours = SpatialGrid()(trained_digits_model, images, labels)
    foolbox = FoolboxSpatial()(trained_digits_model, images, labels)
    a, b = _fooled(ours), _fooled(foolbox)
    assert (a == b).mean() >= 0.97
    assert abs(int(a.sum()) - int(b.sum())) <= 0.01 * len(a)
    for mine, theirs in zip(ours, foolbox):
        if mine.attacked and mine.success != theirs.success:
            winner = mine if mine.success else theirs
            assert (winner.dx, winner.dy) != (0.0, 0.0)


# --------------------------------------------------------------------------- random


def test_random_is_seeded_per_sample_and_independent_of_batching(trained_digits_model, digits_test_batch):
    images, labels = (t[:20] for t in digits_test_batch)
    indices = list(range(500, 520))
    attack = SpatialRandom(seed=3)
    whole = attack(trained_digits_model, images, labels, indices, batch_size=20)
    pieces = attack(trained_digits_model, images, labels, indices, batch_size=6)
    subset = attack(trained_digits_model, images[10:], labels[10:], indices[10:])
    key = lambda r: (r.success, r.angle, r.dx, r.dy, r.iterations)  # noqa: E731
    assert [key(r) for r in whole] == [key(r) for r in pieces]
    assert [key(r) for r in whole[10:]] == [key(r) for r in subset]
    assert not torch.equal(SpatialRandom(seed=4).sample_transforms(500), attack.sample_transforms(500))
    drawn = attack.sample_transforms(500)
    assert drawn.shape == (10, 3)
    assert drawn[:, 0].abs().max() <= 30 and drawn[:, 1:].abs().max() <= 3


def test_worst_of_ten_random_is_weaker_than_the_grid(spatial_runs):
    assert _fooled(spatial_runs["spatial-random"]).sum() < _fooled(spatial_runs["spatial-grid"]).sum()
    assert all(1 <= r.iterations <= 10 for r in spatial_runs["spatial-random"] if r.attacked)


# --------------------------------------------------------------------------- ART and a toy model


class RowCentroidModel(nn.Module):
    """Class 0 while the image's intensity centroid is within 0.75 px of the centre row, else 1.

    Rotations about the centre and horizontal shifts of a centred blob cannot fool it;
    only a vertical translation can.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
        centroid = (x * rows).sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3)).clamp_min(1e-12)
        deviation = (centroid - (h - 1) / 2).abs()
        return torch.stack([0.75 - deviation, deviation - 0.75], dim=1)


def _centred_blobs(n=3, size=16):
    x = torch.zeros(n, 1, size, size)
    x[:, :, 6:10, 6:10] = torch.linspace(0.4, 1.0, n).view(n, 1, 1, 1)
    return x, torch.zeros(n, dtype=torch.long)


def test_grid_finds_the_smallest_vertical_shift_on_a_toy_model():
    images, labels = _centred_blobs()
    results = SpatialGrid()(RowCentroidModel(), images, labels)
    # Magnitude 0.5 ties: rotations of 15 degrees and 1.5 px shifts; pure shifts come first,
    # then (angle, dx, dy) ascending: (0, -1.5, 0) keeps the row, (0, 0, -1.5) fools.
    assert all(r.success and (r.angle, r.dx, r.dy) == (0.0, 0.0, -1.5) for r in results)


def test_art_channels_first_skips_vertical_shifts_and_the_adapter_compensates():
    # Translations only: ART shifts before it rotates, so with rotations a horizontal shift
    # could move the blob vertically too.
    from art.attacks.evasion import SpatialTransformation

    images, labels = _centred_blobs()
    model = RowCentroidModel()
    percent = 100 * 3 / images.shape[2]
    plain = SpatialTransformation(
        art_classifier(model, images, channels_first=True, predict_batch=64), max_translation=percent,
        num_translations=5, max_rotation=0, num_rotations=1, verbose=False,
    )
    plain.generate(images.numpy())
    assert plain.attack_trans_x == 0 and plain.fooling_rate == 0  # ART's bug: no vertical shift tried

    results = ArtSpatial(max_rotation=0, num_rotations=1)(model, images, labels)
    assert all(r.success for r in results)
    assert len({(r.angle, r.dx, r.dy) for r in results}) == 1  # one global transform
    # ART's first transform tried, 3 px up and 3 px left, already fools every sample.
    assert (results[0].angle, results[0].dx, results[0].dy) == (0.0, -3.0, -3.0)
    assert results[0].iterations == 5 * 5


def test_art_rounds_the_translation_grid_to_whole_pixels(trained_digits_model, digits_test_batch):
    images, labels = (t[:4] for t in digits_test_batch)
    results = ArtSpatial(num_rotations=1, max_rotation=0)(trained_digits_model, images, labels)
    shifts = {v for r in results if r.angle is not None for v in (r.dx, r.dy)}
    assert shifts <= {-3.0, -2.0, 0.0, 2.0, 3.0}  # -1.5 and 1.5 round to -2 and 2


def test_art_transform_conversion_matches_scipy():
    from scipy.ndimage import rotate, shift

    size = 64  # a smooth off-centre blob far from the borders
    rows, cols = np.mgrid[0:size, 0:size]
    blob = np.exp(-((rows - 25.0) ** 2 + (cols - 40.0) ** 2) / (2 * 2.5**2)).astype(np.float32)
    for rotation, shift_rows, shift_cols in [(25.0, 2, -3), (-30.0, -3, 0), (0.0, 3, 3)]:
        # What ART's _perturb does to a channels-last image (axes 1, 2 = rows, cols).
        theirs = rotate(shift(blob[None, :, :, None], [0, shift_rows, shift_cols, 0]), angle=rotation,
                        axes=(1, 2), reshape=False)[0, :, :, 0]
        ours = warp(torch.from_numpy(blob)[None, None], *art_to_warp(rotation, shift_rows, shift_cols))
        theirs_t = torch.from_numpy(np.clip(theirs, 0, 1))[None, None]
        torch.testing.assert_close(_centroid(ours), _centroid(theirs_t), atol=0.01, rtol=0)
        assert (ours - theirs_t).abs().max() < 0.05  # bilinear vs cubic spline
    assert all(math.isnan(v) for v in art_to_warp(0.0, 0.0, 0.0))


@pytest.mark.slow
def test_art_spatial_full_grid_on_digits(trained_digits_model, digits_test_batch):
    images, labels = (t[:32] for t in digits_test_batch)
    art = ArtSpatial()(trained_digits_model, images, labels)
    grid = SpatialGrid()(trained_digits_model, images, labels)
    # One global transform for the batch can only do worse than the per-sample worst case.
    assert sum(r.success for r in art) <= sum(r.success for r in grid)
    assert len({(r.angle, r.dx, r.dy) for r in art if r.attacked}) == 1
