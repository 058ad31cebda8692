"""windowize against independent references: F.conv2d on weight x outer(numpy.hamming), torchvision's outputs."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from robustbench_win.models import WindowedConv2d, windowize
from robustbench_win.models.convnext import Patchify
from robustbench_win.registry import MODELS, MissingLibraryError, UnknownNameError
from robustbench_win.suite import SuiteError, load_suite


def hamming_2d(size: int) -> torch.Tensor:
    """The reference 2-D window, from numpy rather than the package."""
    return torch.from_numpy(np.outer(np.hamming(size), np.hamming(size))).float()


def reference(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """F.conv2d with ``weight`` and ``padding``, honouring the layer's padding mode."""
    if conv.padding_mode != "zeros":
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), mode=conv.padding_mode)
        padding = (0, 0)
    return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)


# --------------------------------------------------------------------------- one layer


def test_windowized_conv_equals_hand_built_windowed_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 5, padding=2)
    converted = windowize(conv, "hamming")
    hand = WindowedConv2d(4, 6, 5, window="hamming", padding=2)
    hand.load_state_dict(conv.state_dict())
    x = torch.randn(3, 4, 11, 11)
    assert isinstance(converted, WindowedConv2d)
    assert torch.equal(converted(x), hand(x))
    assert torch.equal(converted.weight, conv.weight)  # the raw weight is the original one


@pytest.mark.parametrize(
    "layer",
    [
        nn.Conv2d(6, 6, 5, padding=2, groups=6),  # depthwise
        nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False),  # depthwise, no bias
        nn.Conv2d(3, 8, 7, stride=2, padding=3),  # strided
        nn.Conv2d(4, 8, 3, padding=2, dilation=2),  # dilated
        nn.Conv2d(4, 8, 5, stride=(1, 2), padding=(1, 2), groups=2),  # grouped, per-axis stride and padding
        nn.Conv2d(3, 5, 3),  # no padding
        nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(3, 5, 5, padding=2, padding_mode="circular", bias=False),
    ],
    ids=["depthwise", "depthwise-nobias", "strided", "dilated", "grouped", "valid", "reflect", "circular"],
)
def test_layers_convert_and_match_the_windowed_reference(layer: nn.Conv2d) -> None:
    torch.manual_seed(1)
    nn.init.normal_(layer.weight)
    x = torch.randn(2, layer.in_channels, 13, 13)
    k = layer.kernel_size[0]
    expected = reference(layer, x, layer.weight * hamming_2d(k), layer.padding)
    converted = windowize(nn.Sequential(layer), "hamming")[0]
    assert isinstance(converted, WindowedConv2d)
    assert (converted.stride, converted.dilation, converted.groups) == (layer.stride, layer.dilation, layer.groups)
    torch.testing.assert_close(converted(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("stride", "dilation"), [(1, 1), (2, 1), (1, 2)])
def test_grown_kernel_with_window_none_computes_the_same_function(stride: int, dilation: int) -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=dilation, dilation=dilation)
    x = torch.randn(2, 3, 12, 12)
    grown = windowize(copy.deepcopy(conv), "none", kernel_size=7)
    assert grown.kernel_size == (7, 7) and grown.padding == (3 * dilation, 3 * dilation)
    assert torch.equal(grown.weight[..., 2:5, 2:5], conv.weight)
    assert grown.weight.abs().sum() == conv.weight.abs().sum()  # the new taps are zero
    torch.testing.assert_close(grown(x), conv(x), rtol=1e-5, atol=1e-6)


def test_valid_padding_grows_to_keep_the_output_size() -> None:
    conv = nn.Conv2d(2, 2, 3, padding="valid")
    grown = windowize(conv, "none", kernel_size=5)
    assert grown.padding == (1, 1)
    x = torch.randn(1, 2, 9, 9)
    torch.testing.assert_close(grown(x), conv(x), rtol=1e-5, atol=1e-6)


def test_shrunk_kernel_is_the_windowed_centre_crop() -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 4, 7, padding=3, bias=False)
    x = torch.randn(2, 3, 10, 10)
    shrunk = windowize(copy.deepcopy(conv), "hamming", kernel_size=3)
    assert shrunk.padding == (1, 1)
    expected = F.conv2d(x, conv.weight[..., 2:5, 2:5] * hamming_2d(3), padding=1)
    torch.testing.assert_close(shrunk(x), expected, rtol=1e-5, atol=1e-6)


def test_same_string_padding_stays_same() -> None:
    conv = nn.Conv2d(2, 2, 3, padding="same")
    grown = windowize(conv, "hamming", kernel_size=5)
    x = torch.randn(1, 2, 8, 8)
    assert grown(x).shape == x.shape
    torch.testing.assert_close(grown(x), F.conv2d(x, F.pad(conv.weight, (1, 1, 1, 1)) * hamming_2d(5), conv.bias,
                                                  padding=2), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- whole models


def test_torchvision_resnet18_with_window_none_is_unchanged() -> None:
    torch.manual_seed(4)
    original = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    converted = windowize(copy.deepcopy(original), "none")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(converted(x), original(x))
    spatial = [m for m in converted.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert len(spatial) == 17 and all(isinstance(m, WindowedConv2d) for m in spatial)
    pointwise = [m for m in converted.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert len(pointwise) == 3 and all(type(m) is nn.Conv2d for m in pointwise)  # 1x1 shortcuts untouched
    assert converted.state_dict().keys() == original.state_dict().keys()


def test_scope_first_converts_the_first_spatial_conv_in_module_order() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)), nn.Conv2d(4, 4, 5, padding=2))
    windowize(model, "hamming", kernel_size=7, scope="first")
    assert type(model[0]) is nn.Conv2d
    assert isinstance(model[1][0], WindowedConv2d) and model[1][0].kernel_size == (7, 7)
    assert type(model[2]) is nn.Conv2d and model[2].kernel_size == (5, 5)


def test_frozen_layers_stay_frozen_and_modes_are_kept() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).eval()
    model[0].weight.requires_grad_(False)
    windowize(model, "hann")
    assert not model[0].weight.requires_grad and model[0].bias.requires_grad
    assert not model[0].training


# --------------------------------------------------------------------------- refusals


class SameConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (1, 1, 1, 1)))


@pytest.mark.parametrize(
    ("layer", "kernel_size", "match"),
    [
        (nn.Conv2d(3, 4, (3, 5)), None, r"layer 'body\.1'.*3 x 5.*square"),
        (nn.Conv2d(3, 4, 4, stride=4), None, r"layer 'body\.1'.*even-sized.*odd kernel"),
        (nn.Conv2d(3, 4, 7, padding=1), 3, r"cannot shrink layer 'body\.1' from 7 x 7 to 3 x 3.*kernel_size >= 5"),
        (SameConv(3, 4, 3), None, r"layer 'body\.1'.*SameConv.*plain nn\.Conv2d"),
        (nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 4, 3)), None, r"layer 'body\.1'.*parametrizations"),
    ],
    ids=["non-square", "even", "negative-padding", "subclass", "weight-norm"],
)
def test_refusals_name_the_layer_and_leave_the_model_unchanged(layer: nn.Conv2d, kernel_size: int | None, match: str) -> None:
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 3, 3, padding=1))
    model.add_module("body", nn.Sequential(nn.Identity(), layer))
    with pytest.raises(ValueError, match=match):
        windowize(model, "hamming", kernel_size=kernel_size)
    assert type(model.stem) is nn.Conv2d  # nothing converted


def test_bad_arguments_are_refused() -> None:
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(ValueError, match="unknown window 'hamm'"):
        windowize(conv, "hamm")
    with pytest.raises(ValueError, match="odd integer"):
        windowize(conv, "hamming", kernel_size=4)
    with pytest.raises(ValueError, match="scope must be one of all, first"):
        windowize(conv, "hamming", scope="last")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- registered models and routes


def test_patchify_equals_a_strided_2x2_conv() -> None:
    torch.manual_seed(5)
    patchify = Patchify(3, 8, 2)
    x = torch.randn(2, 3, 8, 8)
    weight = patchify.proj.weight.reshape(8, 3, 2, 2)  # PixelUnshuffle order: channel, row, column
    torch.testing.assert_close(patchify(x), F.conv2d(x, weight, patchify.proj.bias, stride=2), rtol=1e-5, atol=1e-6)


def test_convnext_depthwise_convs_take_the_kernel_size_and_window() -> None:
    model = MODELS.create("convnext-cpu", in_channels=3, num_classes=10, kernel_size=9, window="hamming", width=8)
    spatial = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert len(spatial) == 6
    for conv in spatial:
        assert isinstance(conv, WindowedConv2d) and conv.window_name == "hamming"
        assert conv.kernel_size == (9, 9) and conv.groups == conv.in_channels == conv.out_channels


def test_tv_resnet18_loads_torchvision_weights_and_resizes_only_block_convs() -> None:
    original = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    model = MODELS.create("tv-resnet18", in_channels=3, num_classes=10, kernel_size=3, window="none").eval()
    model.load_state_dict(original.state_dict())  # weights from a file: the same keys and shapes
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
    grown = MODELS.create("tv-resnet18", in_channels=1, num_classes=10, kernel_size=5, window="hamming")
    assert grown.conv1.kernel_size == (7, 7) and grown.conv1.in_channels == 1 and grown.conv1.window_name == "hamming"
    assert grown.layer3[0].conv2.kernel_size == (5, 5) and grown.layer3[0].downsample[0].kernel_size == (1, 1)


def test_torchvision_route_builds_and_windowizes() -> None:
    assert "torchvision:resnet18" in MODELS
    assert "torchvision:resnet18" not in MODELS.names()  # routed names are not listed
    model = MODELS.create("torchvision:resnet18", in_channels=1, num_classes=7, kernel_size=5, window="hann",
                          window_scope="first")
    windowed = [m for m in model.modules() if isinstance(m, WindowedConv2d)]
    assert len(windowed) == 17 and all(m.kernel_size == (5, 5) for m in windowed)
    assert [m.window_name for m in windowed].count("hann") == 1 and windowed[0] is model.conv1
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 7)


def test_unknown_routed_name_suggests_close_ones() -> None:
    assert "torchvision:resnet1" not in MODELS
    with pytest.raises(UnknownNameError, match=r"unknown model 'torchvision:resnet1'\. Did you mean 'torchvision:resnet18'"):
        MODELS.get("torchvision:resnet1")


def test_missing_optional_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(MissingLibraryError, match=r"needs the optional library timm.*pip install 'robustbench-win\[timm\]'"):
        MODELS.get("timm:resnet18")
    with pytest.raises(SuiteError, match=r"needs the optional library timm"):
        load_suite("quick", ["model.name=timm:resnet18"])


def test_timm_route_when_timm_is_installed() -> None:
    pytest.importorskip("timm")
    model = MODELS.create("timm:resnet10t", in_channels=3, num_classes=5, kernel_size=3, window="hamming")
    spatial = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert spatial and all(isinstance(m, WindowedConv2d) and m.window_name == "hamming" for m in spatial)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 5)


def test_suite_accepts_a_routed_model_name() -> None:
    config = load_suite("quick", ["model.name=torchvision:resnet18", "model.args={}", "kernel_sizes=[3]"])
    assert config.model == "torchvision:resnet18"
