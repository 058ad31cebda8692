"""Model code: window functions, the windowed convolution, the paper CNN and ResNet-18."""

from models.paper_cnn import PaperCNN
from models.resnet import WindowedResNet18
from models.windowed_conv import WindowedConv2d
from models.windows import WINDOWS, window_1d, window_2d

__all__ = ["PaperCNN", "WindowedConv2d", "WindowedResNet18", "WINDOWS", "window_1d", "window_2d"]
