"""Time the spectral-leakage diagnostic (robustbench_win.measure.leakage) on paper CNNs of growing width.

For each width, a randomly initialised ``paper-cnn`` (depth 6, k = 11, Hamming window, stem
width = width / 2) is measured with :func:`robustbench_win.measure.leakage.model_leakage_table`: every k x k
slice of every conv layer, zero-padded to 64 x 64. Prints one row per width: conv slices, the
median of ``--repeats`` wall-clock timings, and slices per second. The authors' width is 256
(about 300,000 slices, five of its layers with 65,536 each).

Usage::

    .venv/bin/python benchmarks/bench_leakage.py                 # widths 16, 64, 256 on the CPU
    .venv/bin/python benchmarks/bench_leakage.py --widths 16 32 --repeats 3 --threads 1
    .venv/bin/python benchmarks/bench_leakage.py --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import pandas as pd
import torch

from robustbench_win.measure.leakage import model_leakage_table
from robustbench_win.models import PaperCNN


def time_model(width: int, *, device: str, repeats: int) -> dict[str, float]:
    """Median seconds of one leakage table of a depth-6, k = 11 paper CNN of this width."""
    torch.manual_seed(0)
    model = PaperCNN(in_channels=3, num_classes=10, kernel_size=11, window="hamming", depth=6, width=width).to(device)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        table = model_leakage_table(model)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    seconds = statistics.median(timings)
    slices = int(table["n_slices"].sum())
    return {"width": width, "slices": slices, "seconds": seconds, "slices_per_s": slices / seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256], help="block widths to time")
    parser.add_argument("--repeats", type=int, default=1, help="timings per width (the median is shown)")
    parser.add_argument("--device", default="cpu", help="where the spectra are computed (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="seconds: width 4 only; measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.widths, args.repeats = [4], 1
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [time_model(width, device=args.device, repeats=args.repeats) for width in args.widths]
    cpu = platform.processor() or platform.machine()
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
