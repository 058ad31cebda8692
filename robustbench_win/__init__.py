"""robustbench-win: do windowed, larger convolution kernels make CNNs more accurate and robust?"""

__version__ = "0.1.0"
