"""Model code: window functions, the windowed convolution, windowize, the paper CNN, ResNet-18, ConvNeXt."""

from robustbench_win.models.convnext import SmallConvNeXt
from robustbench_win.models.paper_cnn import PaperCNN
from robustbench_win.models.resnet import WindowedResNet18
from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.models.windowize import windowize
from robustbench_win.models.windows import WINDOWS, window_1d, window_2d

__all__ = [
    "PaperCNN", "SmallConvNeXt", "WindowedConv2d", "WindowedResNet18", "WINDOWS", "window_1d", "window_2d", "windowize",
]
