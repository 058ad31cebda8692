"""Parameter-matched widths, checked against parameter counts written out by hand."""

from __future__ import annotations

import pytest
from torch import nn

from robustbench_win.models import PaperCNN
from robustbench_win.models.param_match import DEFAULT_TOLERANCE, WidthMatch, count_parameters, match_width
from robustbench_win.registry import UnknownNameError

KERNEL_SIZES = [3, 5, 7, 9, 11]
QUICK = {"in_channels": 1, "num_classes": 10, "depth": 3, "width": 12}  # the quick preset
PAPER = {"in_channels": 3, "num_classes": 10, "depth": 6, "width": 256, "stem_width": 128}  # the authors'
RESNET = {"in_channels": 3, "num_classes": 10, "width": 64}


def paper_cnn_parameters(*, in_channels: int, num_classes: int, depth: int, width: int, stem_width: int, k: int) -> int:
    """7x7 stem conv (no bias) + BN, depth - 1 k x k convs (no bias) + BN, linear with bias."""
    stem = in_channels * stem_width * 7 * 7 + 2 * stem_width
    blocks = (stem_width * width + (depth - 2) * width * width) * k * k + 2 * width * (depth - 1)
    return stem + blocks + width * num_classes + num_classes


def resnet18_parameters(*, in_channels: int, num_classes: int, width: int, k: int, stem_k: int = 3) -> int:
    """Stem conv + BN; 4 stages of 2 basic blocks (two k x k convs + BN each; a 1x1 conv + BN
    shortcut where the channels change); linear with bias."""
    total = in_channels * width * stem_k**2 + 2 * width
    channels_in = width
    for stage in range(4):
        channels = width * 2**stage
        for block in range(2):
            c_in = channels_in if block == 0 else channels
            total += (c_in * channels + channels * channels) * k * k + 4 * channels
            if c_in != channels:
                total += c_in * channels + 2 * channels
        channels_in = channels
    return total + channels_in * num_classes + num_classes


def test_hand_formulas_match_published_and_built_counts() -> None:
    # torchvision's ResNet-18 (7x7 stem, 1000 classes) has 11,689,512 parameters.
    assert resnet18_parameters(in_channels=3, num_classes=1000, width=64, k=3, stem_k=7) == 11_689_512
    assert count_parameters("resnet18", in_channels=3, num_classes=1000, small_input_stem=False) == 11_689_512
    built = PaperCNN(in_channels=3, num_classes=7, kernel_size=5, window="hamming", depth=4, width=6, stem_width=4)
    assert sum(p.numel() for p in built.parameters()) == paper_cnn_parameters(
        in_channels=3, num_classes=7, depth=4, width=6, stem_width=4, k=5
    )
    assert count_parameters(PaperCNN, in_channels=3, num_classes=7, kernel_size=5, depth=4, width=6, stem_width=4) == (
        paper_cnn_parameters(in_channels=3, num_classes=7, depth=4, width=6, stem_width=4, k=5)
    )


@pytest.mark.parametrize("k", KERNEL_SIZES)
@pytest.mark.parametrize("config", [QUICK, PAPER], ids=["quick", "paper"])
def test_paper_cnn_matched_widths_are_within_tolerance(config: dict, k: int) -> None:
    match = match_width("paper-cnn", model_kwargs=config, kernel_size=k)
    reference = paper_cnn_parameters(**_paper_args(config, config["width"], config.get("stem_width")), k=3)
    matched = paper_cnn_parameters(**_paper_args(config, match.width, match.stem_width), k=k)
    assert (match.reference_parameters, match.parameters) == (reference, matched)
    assert abs(matched / reference - 1) <= DEFAULT_TOLERANCE
    assert match.kwargs == {**config, "width": match.width, "kernel_size": k, **_stem(match)}
    if k == 3:
        assert (match.width, match.parameters) == (config["width"], reference)


def _paper_args(config: dict, width: int, stem_width: int | None) -> dict:
    stem = stem_width if stem_width is not None else width // 2  # PaperCNN's default stem
    return {"in_channels": config["in_channels"], "num_classes": config["num_classes"], "depth": config["depth"],
            "width": width, "stem_width": stem}


def _stem(match: WidthMatch) -> dict:
    return {} if match.stem_width is None else {"stem_width": match.stem_width}


@pytest.mark.parametrize("k", KERNEL_SIZES)
def test_wide_paper_cnn_scales_its_stem_proportionally(k: int) -> None:
    match = match_width("paper-cnn", model_kwargs=PAPER, kernel_size=k)
    assert match.stem_width == round(128 * match.width / 256)
    assert match.width < 256 * 3 / k + 2  # about (3 / k) of the width


def test_narrow_paper_cnn_uses_the_stem_as_a_second_knob() -> None:
    # Width 12, k = 7: widths 5 and 6 with the default stem miss by -22 % and +19 %.
    match = match_width("paper-cnn", model_kwargs=QUICK, kernel_size=7)
    assert match.stem_width is not None and match.stem_width != match.width // 2


@pytest.mark.parametrize("k", KERNEL_SIZES)
def test_resnet18_matched_widths_are_within_tolerance(k: int) -> None:
    match = match_width("resnet18", model_kwargs=RESNET, kernel_size=k)
    reference = resnet18_parameters(in_channels=3, num_classes=10, width=64, k=3)
    matched = resnet18_parameters(in_channels=3, num_classes=10, width=match.width, k=k)
    assert (match.reference_parameters, match.parameters, match.stem_width) == (reference, matched, None)
    assert abs(matched / reference - 1) <= DEFAULT_TOLERANCE


def test_unreachable_tolerance_is_reported() -> None:
    # ResNet-18 has one width knob; at width 16 one channel is about 12 % of the count at k = 11.
    with pytest.raises(ValueError, match=r"cannot match resnet18 at kernel size 11 to 701,466 parameters within 5.0%"):
        match_width("resnet18", model_kwargs={**RESNET, "width": 16}, kernel_size=11)


def test_factory_and_record() -> None:
    def tiny(*, in_channels: int, num_classes: int, kernel_size: int, width: int = 8) -> nn.Module:
        pooled = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return nn.Sequential(nn.Conv2d(in_channels, width, kernel_size), *pooled, nn.Linear(width, num_classes))

    # Count: w k^2 + w (conv) + 2 w + 2 (linear). Reference, w = 90, k = 3: 1,082. At k = 9 the
    # count is 84 w + 2: w = 13 gives 1,094 (+1.1 %), w = 12 gives 1,010 (-6.7 %).
    match = match_width(tiny, model_kwargs={"in_channels": 1, "num_classes": 2, "width": 90}, kernel_size=9)
    assert (match.width, match.stem_width, match.parameters, match.reference_parameters) == (13, None, 1094, 1082)
    record = match.as_record()
    assert record["relative_difference"] == pytest.approx(1094 / 1082 - 1)
    assert "kwargs" not in record


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel_size": 4}, "odd integer"),
        ({"tolerance": 0.0}, r"tolerance must be a fraction in \(0, 1\)"),
        ({"model_kwargs": {**QUICK, "kernel_size": 3}}, "must not contain kernel_size"),
        ({"model_kwargs": {"in_channels": 1, "num_classes": 10, "stem_width": 4}}, "must give width as well"),
        ({"model_kwargs": {**QUICK, "width": 0}}, "width must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    arguments = {"model_kwargs": QUICK, "kernel_size": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        match_width("paper-cnn", **arguments)


def test_unknown_model_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="paper-cnn"):
        match_width("paper-cn", model_kwargs=QUICK, kernel_size=5)
