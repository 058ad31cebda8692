"""A small ConvNeXt-style network whose depthwise convs take the kernel size and the window.

Large depthwise kernels are where the kernel-size question lives today (ConvNeXt 7 x 7,
RepLKNet 31 x 31, SLaK 51 x 51). This is the ConvNeXt block design (Liu et al., "A ConvNet for
the 2020s", CVPR 2022) at CPU size for 32 x 32 images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_win.models.normalize import InputNormalization
from robustbench_win.models.windowize import Scope, windowize
from robustbench_win.models.windows import check_kernel_size, check_window


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` tensor, as ConvNeXt's channels-first one."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (nn.LayerNorm's name)
        # (N, C, H, W) -> (N, H, W, C) -> normalise C -> back
        return F.layer_norm(input.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class Patchify(nn.Module):
    """Non-overlapping ``patch x patch`` patches mapped to ``out_channels``: a patchify conv.

    Equal to ConvNeXt's ``Conv2d(kernel_size=patch, stride=patch)``, written as space-to-depth
    (``nn.PixelUnshuffle``) then a 1 x 1 conv, so the model has no even-sized kernel (a window
    needs a centre tap) and every spatial kernel is a depthwise one. Odd heights or widths are
    zero-padded at the bottom and right first.
    """

    def __init__(self, in_channels: int, out_channels: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.unshuffle = nn.PixelUnshuffle(patch)
        self.proj = nn.Conv2d(in_channels * patch * patch, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h, pad_w = (-x.shape[-2]) % self.patch, (-x.shape[-1]) % self.patch
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.proj(self.unshuffle(x))


class ConvNeXtBlock(nn.Module):
    """Depthwise k x k conv -> LayerNorm -> 1 x 1 (4x wider) -> GELU -> 1 x 1, layer scale, residual."""

    def __init__(self, channels: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = LayerNorm2d(channels, eps=1e-6)
        self.pwconv1 = nn.Conv2d(channels, 4 * channels, 1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(4 * channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))


class SmallConvNeXt(nn.Module):
    """ConvNeXt-style network: patchify stem, stages of ConvNeXt blocks, downsampling between stages.

    Stem: 2 x 2 patches (32 x 32 -> 16 x 16) and LayerNorm. Between stages: LayerNorm and
    2 x 2 patches (halving the resolution, doubling the channels). Head: global average pool,
    LayerNorm, Linear. ConvNeXt-T uses 4 x 4 stem patches for 224 x 224 images, widths
    96..768 and depths (3, 3, 9, 3); this one is sized for a CPU. The only spatial kernels are the
    blocks' depthwise convs: they take ``kernel_size`` (ConvNeXt: 7) and the window, applied with
    :func:`~robustbench_win.models.windowize` (so ``window_scope="first"`` windows the first
    depthwise conv only).

    Args:
        in_channels: Image channels.
        num_classes: Output logits.
        kernel_size: Odd size of the depthwise convs.
        window: Window tapering the depthwise convs.
        width: Channels of the first stage; each later stage doubles them.
        depths: Blocks per stage.
        layer_scale: Initial per-channel scale of each block's residual branch. ConvNeXt uses
            1e-6 with AdamW over 300 epochs; the suite trains with SGD for a few epochs, where a
            branch starting near zero barely moves, so the default is 1.
        window_scope: ``"all"`` depthwise convs or the ``"first"`` only.
        mean: Per-channel mean for normalisation inside the model (``None``: none).
        std: Per-channel std, used with ``mean``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        kernel_size: int = 7,
        window: str = "none",
        width: int = 32,
        depths: tuple[int, ...] = (2, 2, 2),
        layer_scale: float = 1.0,
        window_scope: Scope = "all",
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        check_window(window)
        if width < 1 or not depths or min(depths) < 1:
            raise ValueError(f"width and every stage depth must be >= 1, got width {width} and depths {depths}")
        self.normalize = InputNormalization(mean, std)
        layers: list[nn.Module] = [Patchify(in_channels, width, 2), LayerNorm2d(width, eps=1e-6)]
        channels = width
        for stage, depth in enumerate(depths):
            if stage > 0:
                layers += [LayerNorm2d(channels, eps=1e-6), Patchify(channels, 2 * channels, 2)]
                channels *= 2
            layers += [ConvNeXtBlock(channels, kernel_size, layer_scale) for _ in range(depth)]
        self.features = nn.Sequential(*layers)
        self.head_norm = nn.LayerNorm(channels, eps=1e-6)
        self.classifier = nn.Linear(channels, num_classes)
        windowize(self.features, window, scope=window_scope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W) pixels in [0, 1] -> logits (N, num_classes)
        features = self.features(self.normalize(x)).mean(dim=(-2, -1))  # (N, channels)
        return self.classifier(self.head_norm(features))
