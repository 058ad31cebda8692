"""Contract checks for every registered model, and the paper CNN's structure and variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_win.models import PaperCNN, WindowedConv2d, WindowedResNet18
from robustbench_win.models.normalize import InputNormalization
from robustbench_win.models.windows import window_2d
from robustbench_win.registry import MODELS

NUM_CLASSES = 7  # not 10, so a hard-coded class count would show
SMALL_WIDTH = 8


def build(name: str, in_channels: int, **kwargs: object) -> nn.Module:
    """Create a registered model, small where the factory accepts ``width``."""
    try:
        return MODELS.create(name, in_channels=in_channels, num_classes=NUM_CLASSES, width=SMALL_WIDTH, **kwargs)
    except TypeError:  # a plug-in factory without a width argument
        return MODELS.create(name, in_channels=in_channels, num_classes=NUM_CLASSES, **kwargs)


# --------------------------------------------------------------------------- contract: every model


@pytest.mark.parametrize(("in_channels", "size"), [(1, 28), (3, 32)])
@pytest.mark.parametrize("name", MODELS.names())
def test_model_contract(name: str, in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = build(name, in_channels, kernel_size=5, window="hamming")
    x = torch.rand(4, in_channels, size, size)
    labels = torch.arange(4) % NUM_CLASSES

    model.train()
    logits = model(x)
    assert logits.shape == (4, NUM_CLASSES)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, labels).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {param_name} received no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name}: {param_name} received an all-zero gradient"

    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    assert eval_logits.shape == (4, NUM_CLASSES)
    assert torch.isfinite(eval_logits).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_model_window_is_applied_to_every_spatial_conv(name: str) -> None:
    model = build(name, 3, kernel_size=5, window="hamming")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    spatial = [c for c in convs if c.kernel_size != (1, 1)]
    assert spatial
    for conv in spatial:
        assert isinstance(conv, WindowedConv2d), f"{name}: {conv} is not windowed"
        assert conv.window_name == "hamming"


@pytest.mark.parametrize("name", MODELS.names())
def test_model_kernel_size_and_window_none_are_honoured(name: str) -> None:
    model = build(name, 1, kernel_size=7, window="none")
    windowed = [m for m in model.modules() if isinstance(m, WindowedConv2d)]
    assert all(m.window_name == "none" for m in windowed)
    assert any(m.kernel_size == (7, 7) for m in windowed)


# --------------------------------------------------------------------------- the paper's CNN


def paper_cnn(**kwargs: object) -> PaperCNN:
    defaults: dict[str, object] = {"in_channels": 3, "num_classes": 10, "width": 8}
    return PaperCNN(**(defaults | kwargs))


def conv_layers(model: nn.Module) -> list[WindowedConv2d]:
    return [m for m in model.modules() if isinstance(m, WindowedConv2d)]


@pytest.mark.parametrize("depth", [2, 4, 6])
@pytest.mark.parametrize("k", [3, 5, 11])
def test_paper_cnn_structure(depth: int, k: int) -> None:
    model = paper_cnn(kernel_size=k, depth=depth, width=12)
    convs = conv_layers(model)
    assert len(convs) == depth  # M conv layers in all, stem included
    stem, blocks = convs[0], convs[1:]
    assert stem.kernel_size == (7, 7) and stem.stride == (2, 2) and stem.padding == (3, 3)
    assert stem.in_channels == 3 and stem.out_channels == 6  # stem width defaults to width // 2
    for conv in blocks:
        assert conv.kernel_size == (k, k) and conv.stride == (1, 1) and conv.padding == (k // 2, k // 2)
        assert conv.out_channels == 12
    assert all(conv.bias is None for conv in convs)
    # Every conv is followed by BatchNorm and ReLU; no pooling other than the global average.
    layers = list(model.features)
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[index + 1], nn.BatchNorm2d)
            assert isinstance(layers[index + 2], nn.ReLU)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert model.classifier.in_features == 12 and model.classifier.out_features == 10


def test_paper_cnn_stem_width() -> None:
    model = paper_cnn(width=16, stem_width=5)
    assert conv_layers(model)[0].out_channels == 5
    assert conv_layers(model)[1].in_channels == 5


def test_window_scope_all_and_first() -> None:
    every = paper_cnn(window="hamming", kernel_size=5, depth=4)
    assert [c.window_name for c in conv_layers(every)] == ["hamming"] * 4
    first = paper_cnn(window="hamming", kernel_size=5, depth=4, window_scope="first")
    assert [c.window_name for c in conv_layers(first)] == ["hamming", "none", "none", "none"]
    torch.testing.assert_close(conv_layers(first)[0].window[0, 0], window_2d("hamming", 7))


@pytest.mark.parametrize(("downsampling", "size", "expected"), [
    ("stride", 28, 14), ("maxpool", 28, 14), ("none", 28, 28),
    ("stride", 32, 16), ("maxpool", 32, 16), ("none", 32, 32),
])
def test_downsampling_feature_map_size(downsampling: str, size: int, expected: int) -> None:
    model = paper_cnn(downsampling=downsampling, depth=3, kernel_size=5).eval()
    with torch.no_grad():
        features = model.features(torch.rand(2, 3, size, size))
        logits = model(torch.rand(2, 3, size, size))
    assert features.shape == (2, 8, expected, expected)
    assert logits.shape == (2, 10)
    stem = conv_layers(model)[0]
    assert stem.stride == ((2, 2) if downsampling == "stride" else (1, 1))
    has_maxpool = any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert has_maxpool == (downsampling == "maxpool")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"depth": 1}, r"depth must be one of 2\.\.32, got 1"),
    ({"depth": 0}, "depth must be one of"),
    ({"depth": 40}, "depth must be one of"),
    ({"downsampling": "avgpool"}, "downsampling must be one of stride, maxpool, none, got 'avgpool'"),
    ({"window_scope": "last"}, "window_scope must be one of all, first"),
    ({"width": 0}, "width and stem_width must be >= 1"),
    ({"stem_width": 0}, "width and stem_width must be >= 1"),
    ({"kernel_size": 4}, "odd integer >= 1"),
    ({"window": "gauss"}, "unknown window 'gauss'"),
])
def test_paper_cnn_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paper_cnn(**kwargs)


def test_normalisation_happens_inside_the_model() -> None:
    torch.manual_seed(0)
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
    normalised = paper_cnn(mean=mean, std=std, depth=2).eval()
    plain = paper_cnn(depth=2).eval()
    plain.load_state_dict(normalised.state_dict())  # mean/std are not part of the state dict
    x = torch.rand(2, 3, 16, 16)
    by_hand = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normalised(x), plain(by_hand))


@pytest.mark.parametrize(("mean", "std", "message"), [
    ((0.5,), None, "both mean and std"),
    ((0.5, 0.5), (0.2,), "one value per channel"),
    ((0.5,), (0.0,), "positive"),
])
def test_input_normalization_rejects_bad_values(mean: object, std: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InputNormalization(mean, std)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ResNet-18


@pytest.mark.parametrize("small_input_stem", [True, False])
def test_resnet18_stem_and_block_kernels(small_input_stem: bool) -> None:
    model = WindowedResNet18(in_channels=3, num_classes=5, kernel_size=7, window="hann", width=4,
                             small_input_stem=small_input_stem)
    stem = model.net.conv1
    assert isinstance(stem, WindowedConv2d) and stem.window_name == "hann"
    if small_input_stem:
        assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
        assert isinstance(model.net.maxpool, nn.Identity)
    else:
        assert stem.kernel_size == (7, 7) and stem.stride == (2, 2)
        assert isinstance(model.net.maxpool, nn.MaxPool2d)
    block_convs = [m for name, m in model.net.named_modules() if name.startswith("layer") and isinstance(m, WindowedConv2d)]
    assert len(block_convs) == 16  # 8 BasicBlocks x 2 convs
    assert all(c.kernel_size == (7, 7) and c.padding == (3, 3) and c.window_name == "hann" for c in block_convs)
    assert [c.out_channels for c in block_convs[::4]] == [4, 8, 16, 32]
    assert model.net.fc.in_features == 32
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 5)
