"""The faster CPU kernels for input gradients give autograd's gradients, and leave the model as found."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from robustbench_win.attacks.base import channels_last_weights, frozen
from robustbench_win.attacks.input_gradients import fast_input_gradients, narrow_input_convolutions
from robustbench_win.models import PaperCNN
from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.registry import ATTACKS

CPU = torch.device("cpu")


def input_gradient(model: nn.Module, x: torch.Tensor, cotangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and the vector-Jacobian product ``cotangent^T d model(x) / dx``."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad(out, x, cotangent)
    return out.detach(), grad


@pytest.mark.parametrize(
    "in_channels, kwargs",
    [
        (1, {"kernel_size": 7, "stride": 2, "padding": 3}),  # the paper CNN's stem on digits
        (3, {"kernel_size": 7, "stride": 2, "padding": 3}),  # ... on CIFAR
        (3, {"kernel_size": 3, "stride": 1, "padding": 1, "bias": True}),
        (2, {"kernel_size": 5, "stride": 3, "padding": 1, "dilation": 2}),
        (4, {"kernel_size": 4, "stride": 2, "padding": 0, "groups": 2}),
        (3, {"kernel_size": (3, 5), "stride": (1, 2), "padding": (1, 2)}),
    ],
)
def test_input_gradient_matches_autograd(in_channels, kwargs):
    torch.manual_seed(0)
    conv = nn.Conv2d(in_channels, 6, **kwargs).requires_grad_(False)
    x = torch.rand(5, in_channels, 19, 23)
    cotangent = torch.randn_like(conv(x))
    out_ref, grad_ref = input_gradient(conv, x, cotangent)
    assert narrow_input_convolutions(conv) == [conv]
    with fast_input_gradients(conv, CPU):
        out, grad = input_gradient(conv, x, cotangent)
    assert torch.equal(out, out_ref)  # the forward pass is the same call
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-6)


def test_windowed_stem_in_a_channels_last_model_gives_autograd_gradients():
    """The paper CNN as attacks run it: frozen, channels-last weights, Hamming window."""
    torch.manual_seed(1)
    model = PaperCNN(in_channels=1, num_classes=10, kernel_size=5, window="hamming", width=12, depth=3).eval()
    x = torch.rand(7, 1, 28, 28)
    cotangent = torch.randn(7, 10)
    with frozen(model):
        out_ref, grad_ref = input_gradient(model, x, cotangent)
        with channels_last_weights(model), fast_input_gradients(model, CPU):
            assert narrow_input_convolutions(model) == [model.features[0]]  # the stem (6 channels after it)
            assert type(model.features[0]).__name__ == WindowedConv2d.__name__
            out, grad = input_gradient(model, x, cotangent)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-6)


def test_saved_activations_in_default_layout_keep_max_pool_gradients_right():
    """Integer max-pool indices are saved as they are; float activations in the default layout."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 4, 3),
                          nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(4, 3, 16, 16)
    cotangent = torch.randn(4, 3)
    with frozen(model):
        _, grad_ref = input_gradient(model, x, cotangent)
        with channels_last_weights(model), fast_input_gradients(model, CPU):
            _, grad = input_gradient(model, x.contiguous(memory_format=torch.channels_last), cotangent)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-6)


def test_weights_that_require_grad_get_their_gradient():
    """Training inside the context (weights requiring grad) falls back to plain autograd."""
    torch.manual_seed(3)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    reference = copy.deepcopy(conv)
    x = torch.rand(2, 1, 8, 8)
    reference(x).square().sum().backward()
    with fast_input_gradients(conv, CPU):
        conv(x).square().sum().backward()
    torch.testing.assert_close(conv.weight.grad, reference.weight.grad)
    torch.testing.assert_close(conv.bias.grad, reference.bias.grad)


def test_model_is_left_as_found_and_other_layers_are_not_switched():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 3, 3, padding_mode="reflect", padding=1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert narrow_input_convolutions(model) == [model[0]]
    with fast_input_gradients(model, CPU):
        assert "_conv_forward" in vars(model[0]) and "_conv_forward" not in vars(model[1])
    with fast_input_gradients(model, torch.device("cuda")):  # other devices: nothing changes
        assert "_conv_forward" not in vars(model[0])
    with fast_input_gradients(model, CPU, enabled=False):
        assert "_conv_forward" not in vars(model[0])
    assert all("_conv_forward" not in vars(m) for m in model)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_deepfool_gives_the_same_examples_with_and_without_the_fast_kernels(trained_digits_model, digits_test_batch,
                                                                          monkeypatch):
    images, labels = (t[:48] for t in digits_test_batch)
    attack = ATTACKS.create("deepfool")
    fast = attack(trained_digits_model, images, labels, batch_size=32)
    monkeypatch.setattr(type(attack), "fast_gradient_kernels", False)
    plain = attack(trained_digits_model, images, labels, batch_size=32)
    assert [r.success for r in fast] == [r.success for r in plain]
    assert [r.iterations for r in fast] == [r.iterations for r in plain]
    for a, b in zip(fast, plain):
        if a.success:
            assert a.l2 == pytest.approx(b.l2, rel=1e-4)
