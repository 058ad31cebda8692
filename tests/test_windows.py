"""Window functions and the windowed convolution (DESIGN.md section 2, "Window functions")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.models.windows import KAISER_BETA, WINDOWS, check_kernel_size, window_1d, window_2d

ODD_SIZES = list(range(1, 16, 2))
EVEN_SIZES = list(range(2, 16, 2))

# numpy/scipy references: the *symmetric* windows used for filter design.
REFERENCES = {
    "none": np.ones,
    "hamming": np.hamming,
    "hann": np.hanning,
    "blackman": np.blackman,
    "kaiser": lambda n: np.kaiser(n, 14.0),
}


def test_every_offered_window_has_a_reference() -> None:
    assert set(WINDOWS) == set(REFERENCES)
    assert KAISER_BETA == 14.0


# --------------------------------------------------------------------------- 1-D windows


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("size", ODD_SIZES)
def test_window_1d_matches_numpy(name: str, size: int) -> None:
    ours = window_1d(name, size)
    assert ours.dtype == torch.float64
    assert ours.shape == (size,)
    np.testing.assert_allclose(ours.numpy(), REFERENCES[name](size), rtol=0, atol=1e-7)


@pytest.mark.parametrize("size", ODD_SIZES)
def test_window_1d_matches_scipy_symmetric(size: int) -> None:
    signal = pytest.importorskip("scipy.signal")
    for name, scipy_window in [("hamming", "hamming"), ("hann", "hann"), ("blackman", "blackman"),
                               ("kaiser", ("kaiser", 14.0))]:
        expected = signal.get_window(scipy_window, size, fftbins=False)
        np.testing.assert_allclose(window_1d(name, size).numpy(), expected, rtol=0, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("size", EVEN_SIZES)
@pytest.mark.parametrize("name", WINDOWS)
def test_even_sizes_are_rejected(name: str, size: int) -> None:
    with pytest.raises(ValueError, match=rf"odd integer >= 1.*got {size}"):
        window_1d(name, size)


@pytest.mark.parametrize("size", [0, -1, -3, 2.0, 3.0, "3", True, None, (3, 3)])
def test_non_kernel_sizes_are_rejected(size: object) -> None:
    with pytest.raises(ValueError, match="odd integer >= 1"):
        check_kernel_size(size)  # type: ignore[arg-type]


def test_unknown_window_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown window 'hanning'.*none, hamming, hann, blackman, kaiser"):
        window_1d("hanning", 5)


def test_hamming_is_symmetric_not_periodic() -> None:
    ours = window_1d("hamming", 5)
    # Symmetric form: end points 0.08, centre 1 (numpy.hamming).
    assert ours[0].item() == pytest.approx(0.08, abs=1e-12)
    assert ours[-1].item() == pytest.approx(0.08, abs=1e-12)
    assert ours[2].item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(ours, ours.flip(0))
    # torch's default is the periodic window, which is *not* what we return.
    periodic = torch.hamming_window(5, dtype=torch.float64)
    assert not torch.allclose(ours, periodic)
    assert periodic[-1].item() != pytest.approx(0.08, abs=1e-3)
    torch.testing.assert_close(ours, torch.hamming_window(5, periodic=False, dtype=torch.float64))


@pytest.mark.parametrize("name", WINDOWS)
def test_length_one_window_is_one(name: str) -> None:
    assert window_1d(name, 1).tolist() == [1.0]


def test_window_1d_dtype() -> None:
    assert window_1d("hann", 7, dtype=torch.float32).dtype == torch.float32


# --------------------------------------------------------------------------- 2-D windows


@pytest.mark.parametrize("name", WINDOWS)
@pytest.mark.parametrize("size", ODD_SIZES)
def test_window_2d_is_outer_product_not_renormalised(name: str, size: int) -> None:
    reference = REFERENCES[name](size)
    expected = np.outer(reference, reference)
    ours = window_2d(name, size)
    assert ours.shape == (size, size)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(window_2d(name, size, dtype=torch.float64).numpy(), expected, rtol=0, atol=1e-12)


def test_windowed_3x3_is_almost_1x1() -> None:
    # Corners 0.08**2 = 0.0064, edges 0.08, centre 1: expected, not a bug (DESIGN.md).
    w = window_2d("hamming", 3, dtype=torch.float64)
    assert w[0, 0].item() == pytest.approx(0.0064, abs=1e-12)
    assert w[0, 1].item() == pytest.approx(0.08, abs=1e-12)
    assert w[1, 1].item() == pytest.approx(1.0, abs=1e-12)
    assert w.sum().item() == pytest.approx(1.16**2, abs=1e-12)  # no renormalisation to sum 1


# --------------------------------------------------------------------------- WindowedConv2d


def _reference_window(name: str, k: int) -> torch.Tensor:
    w = REFERENCES[name](k)
    return torch.from_numpy(np.outer(w, w)).float()


CONV_CASES = [
    # (in, out, k, stride, groups, bias, window)
    (3, 4, 1, 1, 1, True, "hamming"),
    (3, 4, 3, 1, 1, False, "hamming"),
    (2, 6, 5, 2, 1, True, "hann"),
    (4, 8, 7, 1, 2, True, "blackman"),
    (4, 4, 9, 3, 4, False, "kaiser"),
    (6, 3, 11, 2, 3, True, "hamming"),
]


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "groups", "bias", "window"), CONV_CASES)
def test_windowed_conv_equals_conv2d_with_premultiplied_weight(
    cin: int, cout: int, k: int, stride: int, groups: int, bias: bool, window: str
) -> None:
    torch.manual_seed(0)
    conv = WindowedConv2d(cin, cout, k, window=window, stride=stride, padding=k // 2, groups=groups, bias=bias)
    x = torch.randn(2, cin, 17, 15)
    expected = F.conv2d(x, conv.weight * _reference_window(window, k), conv.bias, stride, k // 2, 1, groups)
    out = conv(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # The window really changes the result (except for 1x1 kernels, whose window is 1).
    if k > 1:
        plain = F.conv2d(x, conv.weight, conv.bias, stride, k // 2, 1, groups)
        assert not torch.allclose(out, plain, atol=1e-4)


@pytest.mark.parametrize(("k", "stride", "groups", "bias"), [(3, 1, 1, True), (5, 2, 2, False), (7, 1, 1, True)])
def test_window_none_equals_nn_conv2d_exactly(k: int, stride: int, groups: int, bias: bool) -> None:
    torch.manual_seed(1)
    ours = WindowedConv2d(4, 6, k, window="none", stride=stride, padding=k // 2, groups=groups, bias=bias)
    plain = nn.Conv2d(4, 6, k, stride=stride, padding=k // 2, groups=groups, bias=bias)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, 12, 12)
    assert torch.equal(ours(x), plain(x))
    assert ours.windowed_weight() is ours.weight


@pytest.mark.parametrize("window", ["hamming", "kaiser"])
def test_gradient_reaches_raw_weight_times_window(window: str) -> None:
    torch.manual_seed(2)
    k = 5
    conv = WindowedConv2d(3, 4, k, window=window, padding=2)
    x = torch.randn(2, 3, 9, 9)
    upstream = torch.randn(2, 4, 9, 9)
    (conv(x) * upstream).sum().backward()

    window_2d_ref = _reference_window(window, k)
    effective = (conv.weight.detach() * window_2d_ref).requires_grad_()
    (F.conv2d(x, effective, conv.bias.detach(), padding=2) * upstream).sum().backward()

    assert conv.weight.grad is not None
    torch.testing.assert_close(conv.weight.grad, effective.grad * window_2d_ref, rtol=1e-5, atol=1e-6)
    assert conv.window.grad is None and not conv.window.requires_grad


def test_window_is_a_buffer_and_state_dict_holds_raw_weight() -> None:
    torch.manual_seed(3)
    conv = WindowedConv2d(2, 3, 5, window="hamming", padding=2)
    assert "window" in dict(conv.named_buffers())
    assert "window" not in dict(conv.named_parameters())
    assert {name for name, _ in conv.named_parameters()} == {"weight", "bias"}
    state = conv.state_dict()
    assert set(state) == {"weight", "bias"}
    assert torch.equal(state["weight"], conv.weight.detach())
    assert not torch.equal(state["weight"], conv.windowed_weight().detach())
    # A fresh layer loaded from the state dict computes the same function.
    fresh = WindowedConv2d(2, 3, 5, window="hamming", padding=2)
    fresh.load_state_dict(state)
    x = torch.randn(1, 2, 8, 8)
    assert torch.equal(fresh(x), conv(x))
    # The buffer follows .to(dtype).
    assert conv.double().window.dtype == torch.float64


def test_optimiser_step_updates_raw_weight() -> None:
    torch.manual_seed(4)
    conv = WindowedConv2d(2, 2, 3, window="hamming", padding=1, bias=False)
    before = conv.weight.detach().clone()
    optimiser = torch.optim.SGD(conv.parameters(), lr=0.5)
    conv(torch.randn(2, 2, 6, 6)).square().sum().backward()
    grad = conv.weight.grad.clone()
    optimiser.step()
    torch.testing.assert_close(conv.weight.detach(), before - 0.5 * grad)
    # The window itself never moves; the convolved kernel is the updated raw weight times it.
    torch.testing.assert_close(conv.window[0, 0], _reference_window("hamming", 3))
    torch.testing.assert_close(conv.windowed_weight().detach(), conv.weight.detach() * _reference_window("hamming", 3))


@pytest.mark.parametrize("k", [0, -1, -3, 2, 4, 10])
def test_conv_rejects_bad_kernel_sizes(k: int) -> None:
    with pytest.raises(ValueError, match=r"kernel size must be an odd integer >= 1.*got"):
        WindowedConv2d(1, 1, k, window="hamming")


def test_conv_rejects_unknown_window() -> None:
    with pytest.raises(ValueError, match="unknown window 'gauss'; expected one of none, hamming"):
        WindowedConv2d(1, 1, 3, window="gauss")


def test_conv_repr_names_window() -> None:
    assert "window=hann" in repr(WindowedConv2d(1, 1, 3, window="hann"))
