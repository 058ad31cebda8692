"""Training throughput of baseline vs Hamming-windowed PaperCNNs, fp32 vs bf16 autocast.

Measures, side by side in one run, for kernel sizes 3, 5, 7, 9, 11:

- training throughput (images/s): the median over ``--repeats`` timings of a fixed number of
  optimiser steps (``--steps`` in fp32, ``--bf16-steps`` in bf16; forward, backward, SGD update:
  the code path of :func:`robustbench_win.train.loop.train`), after ``--warmup`` untimed steps.
  Configurations are interleaved within every repeat, so a slow-down of a shared machine hits
  all of them alike;
- the windowing overhead, as the time ratio hamming / none, paired within each repeat (target:
  below 1.05);
- the bf16 autocast speed-up, bf16 / fp32 images per second;
- the clean-accuracy difference bf16 - fp32 after the same short training on mnist5k (target:
  within 0.5 points), next to the fp32 seed-to-seed difference for scale.

Writes ``bench/training.csv`` (one row per configuration) and ``bench/training.md``.

Usage::

    .venv/bin/python benchmarks/bench_training.py            # about 3 minutes on one AVX2 core
    .venv/bin/python benchmarks/bench_training.py --quick    # smoke run, well under a minute
    .venv/bin/python benchmarks/bench_training.py --dataset cifar10 --width 32
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from robustbench_win.models import PaperCNN
from robustbench_win.data.datasets import load_dataset
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import train_step, evaluate, seed_everything, train

KERNEL_SIZES = (3, 5, 7, 9, 11)
WINDOWS = ("none", "hamming")
PRECISIONS = ("fp32", "bf16")
INPUT_SHAPES = {"mnist5k": (1, 28, 28), "cifar10": (3, 32, 32)}  # (C, H, W)
OVERHEAD_TARGET = 1.05  # hamming / none time ratio
ACCURACY_TARGET = 0.5  # points of clean accuracy, |bf16 - fp32|


@dataclass
class Timing:
    """Throughput samples of one (kernel size, window, precision) configuration."""

    kernel_size: int
    window: str
    precision: str
    samples: list[float] = field(default_factory=list)  # images/s, one per repeat

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16, help="channels of the block convs (default 16)")
    parser.add_argument("--depth", type=int, default=4, help="conv layers in all (default 4)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--steps", type=int, default=10, help="timed fp32 optimiser steps per repeat (default 10)")
    parser.add_argument("--bf16-steps", type=int, default=2,
                        help="timed bf16 steps per repeat (default 2: bf16 is slow on CPUs without bf16 units)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per configuration first (default 1)")
    parser.add_argument("--kernel-sizes", type=int, nargs="+", default=list(KERNEL_SIZES), metavar="K")
    parser.add_argument("--dataset", choices=sorted(INPUT_SHAPES), default="mnist5k",
                        help="input size for throughput: mnist5k digits (1x28x28) or CIFAR-sized random "
                             "images (3x32x32); the accuracy check always trains on mnist5k")
    parser.add_argument("--accuracy-epochs", type=int, default=4, help="epochs of the bf16-vs-fp32 training (default 4)")
    parser.add_argument("--accuracy-kernel-size", type=int, default=3,
                        help="kernel size of the accuracy check (default 3: bf16 is slow on CPUs without bf16 units)")
    parser.add_argument("--accuracy-window", choices=WINDOWS, default="none",
                        help="window of the accuracy check (default none: a windowed 3x3 is nearly 1x1 and "
                             "learns too slowly for a short run)")
    parser.add_argument("--accuracy-seeds", type=int, default=2, help="seeds per precision (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: stable timings on a shared machine; 0: torch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="output folder (default bench/)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: k = 3 and 5, 2 repeats of 3 (bf16: 1) steps, 2 training epochs, 1 seed")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: k = 3, width 4, depth 2, one step of each kind, one training epoch; measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.kernel_sizes, args.width, args.depth, args.batch_size = [3], 4, 2, 8
        args.steps, args.bf16_steps, args.repeats, args.warmup = 1, 1, 1, 0
        args.accuracy_epochs, args.accuracy_seeds = 1, 1
    if args.quick:
        args.kernel_sizes, args.steps, args.bf16_steps, args.repeats, args.warmup = [3, 5], 3, 1, 2, 1
        args.accuracy_epochs, args.accuracy_seeds = 2, 1
    for name in ("width", "depth", "batch_size", "steps", "bf16_steps", "repeats", "accuracy_seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def build(args: argparse.Namespace, in_channels: int, kernel_size: int, window: str) -> PaperCNN:
    return PaperCNN(in_channels=in_channels, num_classes=10, kernel_size=kernel_size, window=window,
                    depth=args.depth, width=args.width)


def input_batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed training batch: real digits for mnist5k, uniform noise for CIFAR-sized input."""
    generator = torch.Generator().manual_seed(0)
    if args.dataset == "mnist5k":
        data = load_dataset("mnist5k")
        index = torch.randperm(len(data.train_labels), generator=generator)[: args.batch_size]
        return data.train_images[index].float() / 255, data.train_labels[index]
    shape = (args.batch_size, *INPUT_SHAPES[args.dataset])
    return torch.rand(shape, generator=generator), torch.randint(0, 10, (args.batch_size,), generator=generator)


def steps_of(args: argparse.Namespace, precision: str) -> int:
    return args.bf16_steps if precision == "bf16" else args.steps


def measure_throughput(args: argparse.Namespace) -> list[Timing]:
    """Median images/s of every configuration, repeats interleaved across configurations."""
    images, labels = input_batch(args)
    runs = []
    for k in args.kernel_sizes:
        for precision in PRECISIONS:
            for window in WINDOWS:  # none and hamming back to back: the ratio sees the same load
                torch.manual_seed(0)
                model = build(args, images.shape[1], k, window).train()
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
                for _ in range(args.warmup):
                    train_step(model, optimizer, images, labels, precision)
                runs.append((Timing(k, window, precision), model, optimizer))
    for repeat in range(args.repeats):
        for timing, model, optimizer in runs:
            steps = steps_of(args, timing.precision)
            start = time.perf_counter()
            for _ in range(steps):
                train_step(model, optimizer, images, labels, timing.precision)
            timing.samples.append(steps * len(labels) / (time.perf_counter() - start))
        print(f"  repeat {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    return [timing for timing, _, _ in runs]


def measure_accuracy(args: argparse.Namespace) -> pd.DataFrame:
    """Clean mnist5k accuracy after the same short training in fp32 and in bf16, per seed."""
    data = load_dataset("mnist5k")
    rows = []
    for seed in range(args.accuracy_seeds):
        for precision in PRECISIONS:
            seed_everything(seed)
            model = build(args, 1, args.accuracy_kernel_size, args.accuracy_window)
            config = TrainConfig(epochs=args.accuracy_epochs, batch_size=64, lr=0.05, weight_decay=5e-4,
                                 milestones=(max(1, args.accuracy_epochs - 1),), precision=precision)
            result = train(model, data, config, seed=seed, progress=False)
            accuracy = 100 * float(evaluate(model, data).float().mean())
            rows.append({"seed": seed, "precision": precision, "accuracy": accuracy, "train_seconds": result.seconds})
            print(f"  accuracy seed {seed} {precision}: {accuracy:.2f}% ({result.seconds:.0f} s)", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def throughput_table(timings: list[Timing]) -> pd.DataFrame:
    """One row per kernel size: the four throughputs, windowing overhead and bf16 speed-up.

    The overhead is the median over repeats of the *paired* ratio (none and hamming are timed back
    to back within each repeat), which cancels most of the drift of a shared machine.
    """
    ips = {(t.kernel_size, t.window, t.precision): t.median for t in timings}
    samples = {(t.kernel_size, t.window, t.precision): t.samples for t in timings}
    rows = []
    for k in sorted({t.kernel_size for t in timings}):
        row: dict[str, float | int] = {"k": k}
        for precision in PRECISIONS:
            for window in WINDOWS:
                row[f"{precision} {window} img/s"] = ips[k, window, precision]
        for precision in PRECISIONS:
            pairs = zip(samples[k, "none", precision], samples[k, "hamming", precision])
            row[f"{precision} hamming/none time"] = statistics.median(none / hamming for none, hamming in pairs)
        for window in WINDOWS:
            row[f"bf16 speed-up ({window})"] = ips[k, window, "bf16"] / ips[k, window, "fp32"]
        rows.append(row)
    return pd.DataFrame(rows)


def environment(args: argparse.Namespace) -> str:
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        words = set(cpuinfo.read_text().split())
        flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in words)
    shape = "x".join(map(str, INPUT_SHAPES[args.dataset]))
    return (
        f"PaperCNN depth {args.depth}, width {args.width} (stem {max(1, args.width // 2)}), batch {args.batch_size}, "
        f"input {shape} ({args.dataset}{'' if args.dataset == 'mnist5k' else '-sized random images'}); "
        f"images/s: median of {args.repeats} timings of {args.steps} fp32 / {args.bf16_steps} bf16 steps, "
        f"after {args.warmup} warm-up step(s); "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()} CPU "
        f"({flags or 'flags unknown'})"
    )


def _formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Throughputs as whole images/s, ratios with three decimals."""
    shown = table.copy()
    for column in shown.columns[1:]:
        digits = 0 if column.endswith("img/s") else 3
        shown[column] = shown[column].map(lambda value, d=digits: f"{value:.{d}f}")
    return shown


def markdown(args: argparse.Namespace, timings: list[Timing], table: pd.DataFrame, accuracy: pd.DataFrame,
             seconds: float) -> str:
    lines = ["# Training throughput: baseline vs Hamming window, fp32 vs bf16", "",
             environment(args) + ".", "",
             _formatted(table).to_markdown(index=False), ""]
    for precision in PRECISIONS:
        ratios = table[f"{precision} hamming/none time"]
        mean = statistics.geometric_mean(ratios)
        verdict = "meets" if mean < OVERHEAD_TARGET else "misses"
        lines.append(f"- Windowing overhead, {precision}: hamming/none time ratio {mean:.3f} (geometric mean over k; "
                     f"{ratios.min():.3f} to {ratios.max():.3f} per k): {verdict} the target < {OVERHEAD_TARGET}.")
    speedups = table[[f"bf16 speed-up ({w})" for w in WINDOWS]].to_numpy()
    spread = max(max(t.samples) / min(t.samples) for t in timings)
    lines.append(f"- Timing noise: the largest max/min ratio over the repeats of one configuration is "
                 f"{spread:.2f}; ratios closer to 1 than that are within noise.")
    lines.append(f"- bf16 autocast speed-up: {speedups.min():.2f}x to {speedups.max():.2f}x "
                 f"({'a slow-down' if speedups.max() < 1 else 'mixed' if speedups.min() < 1 else 'a gain'} on this CPU).")
    pivot = accuracy.pivot(index="seed", columns="precision", values="accuracy")
    differences = pivot["bf16"] - pivot["fp32"]
    lines += ["", f"## Clean accuracy after the same short training (mnist5k, k={args.accuracy_kernel_size}, "
              f"window {args.accuracy_window}, {args.accuracy_epochs} epochs)", "",
              accuracy.to_markdown(index=False, floatfmt=".2f"), ""]
    worst_diff = float(differences.abs().max())
    verdict = "meets" if worst_diff <= ACCURACY_TARGET else "misses"
    lines.append(f"- bf16 - fp32: {', '.join(f'{d:+.2f}' for d in differences)} points per seed "
                 f"(worst {worst_diff:.2f}; {verdict} the target of {ACCURACY_TARGET} points).")
    if len(pivot) > 1:
        spread = float(pivot["fp32"].max() - pivot["fp32"].min())
        lines.append(f"- For scale, fp32 seed-to-seed spread: {spread:.2f} points.")
    lines += ["", f"Benchmark wall time: {seconds:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(f"throughput: {environment(args)}", file=sys.stderr)
    timings = measure_throughput(args)
    print("accuracy: fp32 vs bf16 on mnist5k", file=sys.stderr)
    accuracy = measure_accuracy(args)
    table = throughput_table(timings)

    args.out.mkdir(parents=True, exist_ok=True)
    records = pd.DataFrame([{
        "kernel_size": t.kernel_size, "window": t.window, "precision": t.precision,
        "images_per_second": t.median, "min_images_per_second": min(t.samples),
        "max_images_per_second": max(t.samples), "steps": steps_of(args, t.precision), "repeats": args.repeats,
        "batch_size": args.batch_size, "width": args.width, "depth": args.depth, "input": args.dataset,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    } for t in timings])
    records.to_csv(args.out / "training.csv", index=False)
    report = markdown(args, timings, table, accuracy, time.perf_counter() - start)
    (args.out / "training.md").write_text(report)
    print(report)
    print(f"wrote {args.out / 'training.csv'} and {args.out / 'training.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
