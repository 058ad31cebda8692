"""GPU-speed training of the ``cifar10-paper`` model: every speed option, windowing overhead, preset wall time.

For the model of a suite (default ``cifar10-paper``: paper CNN, width 256, 6 layers, batch 32,
CIFAR-sized images) at each kernel size, baseline and Hamming, side by side in one run:

- images per second of the training loop of :func:`robustbench_win.train.loop.train` (batch
  pipeline, forward, backward, SGD update), for fp32 and bf16 autocast, each through a ladder
  of speed options: plain, then + channels-last, + data held on the device, + ``torch.compile``
  (compile only for bf16 and ``--compile-kernel-sizes``: it takes tens of seconds per model).
  Medians over ``--repeats`` timings of ``--steps`` steps, after ``--warmup`` untimed steps;
  all variants of one kernel size are interleaved within every repeat, so drift of the
  machine hits them alike;
- the windowing overhead, hamming / none time - 1, paired within each repeat (target < 3%);
- the seconds per attacked image of each of the suite's attacks, timed on the untrained model
  (fp32, as every attack runs) with its own predictions as labels;
- the projected wall time of the whole suite (epochs x training images / throughput, plus
  attack time, per model; models spread over 1, 4 and 8 GPUs, longest first).

Without CUDA it says so and measures small sizes (``--set model.args.width=8`` and the like,
a few steps) so that it finishes in about a minute; those numbers are not GPU numbers.

Writes ``bench/gpu_training.csv`` (one row per configuration) and ``bench/gpu_training.md``::

    .venv/bin/python benchmarks/bench_gpu_training.py              # make bench-gpu
    .venv/bin/python benchmarks/bench_gpu_training.py --kernel-sizes 3 11 --compile-kernel-sizes 11
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from robustbench_win.train.batches import BatchSource
from robustbench_win.data.datasets import DatasetNotFoundError, load_dataset, subsample
from robustbench_win.registry import ATTACKS, MODELS
from robustbench_win.store.records import ATTACK_RECORDS
from robustbench_win.train.speed import COMPILE_MIN_STEPS, SpeedSettings, accelerated
from robustbench_win.suite import SuiteConfig, load_suite
from robustbench_win.train.loop import train_step, bf16_autocast_available

PRECISIONS = ("fp32", "bf16")
OVERHEAD_TARGET = 0.03  # hamming / none time - 1
CIFAR_SHAPE = (3, 32, 32)  # (C, H, W) of the timing images when the data set is not on disk
CIFAR_CLASSES = 10
# Attacks on trained CIFAR-10 models: samples.csv.gz, or samples.csv in a report built before compression.
STORED_SAMPLES = ATTACK_RECORDS.consolidated_file(ROOT / "reports" / "cifar10-jpeg")
# Sizes per machine; every one can be overridden on the command line.
SIZES: dict[str, dict[str, Any]] = {
    "cuda": {"overrides": [], "steps": 30, "bf16_steps": 30, "repeats": 5, "warmup": 3, "timing_batches": 64,
             "attack_images": 16, "compile_kernel_sizes": [3, 11]},
    "cpu": {"overrides": ["model.args.width=8", "model.args.stem_width=4", "train.batch_size=16"],
            "steps": 8, "bf16_steps": 4, "repeats": 5, "warmup": 1, "timing_batches": 8,
            "attack_images": 2, "compile_kernel_sizes": []},
}


# --------------------------------------------------------------------------------------------
# What is measured


@dataclass(frozen=True)
class Variant:
    """A precision and a set of speed options, all explicit (no "auto")."""

    precision: str
    channels_last: bool = False
    data_on_device: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        options = [name for name, on in (("+cl", self.channels_last), ("+dev", self.data_on_device),
                                         ("+compile", self.compile)) if on]
        return " ".join([self.precision, *options])

    @property
    def settings(self) -> SpeedSettings:
        return SpeedSettings(self.channels_last, self.data_on_device, self.compile)


def ladder(precision: str, with_compile: bool) -> list[Variant]:
    """Plain, then each speed option added on top of the previous ones."""
    steps = [Variant(precision), Variant(precision, True), Variant(precision, True, True)]
    return steps + [Variant(precision, True, True, True)] if with_compile else steps


@dataclass
class Setup:
    """Everything a measurement needs, resolved from the command line and the suite."""

    args: argparse.Namespace
    suite: SuiteConfig
    device: torch.device
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    augment: bool
    train_images: int  # per epoch, for the projection
    data_note: str

    @property
    def batch_size(self) -> int:
        return self.suite.train.batch_size


@dataclass
class Trial:
    """One (kernel size, window, variant) being timed: a model, its optimiser and its batches."""

    kernel_size: int
    window: str
    variant: Variant
    module: nn.Module  # what steps run through (compiled or not)
    optimizer: torch.optim.Optimizer
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
    first_step_seconds: float = 0.0  # includes compiling for a compiled variant
    samples: list[float] = field(default_factory=list)  # images/s, one per repeat

    def step(self) -> None:
        images, labels = next(self.batches)
        train_step(self.module, self.optimizer, images, labels, self.variant.precision)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# --------------------------------------------------------------------------------------------
# Set-up


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="cifar10-paper", help="suite whose model and preset are measured")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="suite override, as for `run --set` (default on a CPU: width 8, stem 4, batch 16)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--kernel-sizes", type=int, nargs="+", metavar="K", help="default: the suite's")
    parser.add_argument("--compile-kernel-sizes", type=int, nargs="*", metavar="K",
                        help="kernel sizes whose bf16 ladder adds torch.compile (CUDA default: 3 11; CPU: none)")
    parser.add_argument("--steps", type=int, help="timed fp32 steps per repeat (CUDA 30, CPU 8)")
    parser.add_argument("--bf16-steps", type=int, help="timed bf16 steps per repeat (CUDA 30, CPU 4)")
    parser.add_argument("--repeats", type=int, help="timed repeats; medians are reported (CUDA 5, CPU 5)")
    parser.add_argument("--warmup", type=int, help="untimed steps per configuration first (CUDA 3, CPU 1)")
    parser.add_argument("--timing-batches", type=int, help="batches of random images cycled through (CUDA 64, CPU 8)")
    parser.add_argument("--attack-images", type=int, help="images per attack timing, 0 to skip (CUDA 16, CPU 2)")
    parser.add_argument("--iterations-from", type=Path, default=STORED_SAMPLES,
                        help="samples.csv.gz (or samples.csv) of a run whose mean iterations per attacked image the attack times are "
                             "scaled to (default: reports/cifar10-jpeg, trained CIFAR-10 models)")
    parser.add_argument("--train-images", type=int, default=50_000,
                        help="training images per epoch for the projection when the data set is not on disk "
                             "(default 50000, CIFAR-10's training split)")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8], help="GPU counts of the projection")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; 0: torch's choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds, on the CPU: k = 3, one step of each kind, one attacked image; measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.kernel_sizes, args.gpus = "cpu", [3], [1]
        args.steps, args.bf16_steps, args.repeats, args.timing_batches, args.attack_images = 1, 1, 1, 2, 1
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.device = "cuda" if cuda else "cpu"
    for name, default in SIZES[args.device].items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    for name in ("steps", "bf16_steps", "repeats", "warmup", "timing_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def make_setup(args: argparse.Namespace) -> Setup:
    """Load the suite (with overrides) and find the data's shape and size, or assume CIFAR-10's."""
    suite = load_suite(args.suite, args.overrides)
    args.kernel_sizes = args.kernel_sizes or list(suite.kernel_sizes)
    try:
        data = subsample(load_dataset(suite.dataset), train_size=suite.train_size, test_size=None)
    except DatasetNotFoundError:
        note = (f"{suite.dataset} is not on disk: timed on random {'x'.join(map(str, CIFAR_SHAPE))} images with "
                f"crop + flip augmentation; the projection assumes {args.train_images} training images per epoch")
        return Setup(args, suite, torch.device(args.device), CIFAR_SHAPE, CIFAR_CLASSES, True, args.train_images, note)
    shape = (data.in_channels, *data.image_size)
    note = (f"timed on random images shaped like {data.display_name} ({'x'.join(map(str, shape))}, augmentation "
            f"{'on' if data.augment else 'off'}); {len(data.train_labels)} training images per epoch")
    return Setup(args, suite, torch.device(args.device), shape, data.num_classes, data.augment, len(data.train_labels), note)


def build_model(setup: Setup, kernel_size: int, window: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.create(setup.suite.model, in_channels=setup.image_shape[0], num_classes=setup.num_classes,
                         kernel_size=kernel_size, window=window, **setup.suite.model_args).to(setup.device)


def timing_images(setup: Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images and labels: ``timing_batches`` full batches (speed does not depend on pixels)."""
    generator = torch.Generator().manual_seed(0)
    count = setup.args.timing_batches * setup.batch_size
    images = torch.randint(0, 256, (count, *setup.image_shape), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, setup.num_classes, (count,), generator=generator)


def endless_batches(source: BatchSource, setup: Setup) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    while True:
        yield from source.epoch(setup.batch_size, generator, setup.augment)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Training throughput


def variants_for(setup: Setup, kernel_size: int) -> list[Variant]:
    precisions = [p for p in PRECISIONS if p == "fp32" or bf16_autocast_available(setup.device)]
    return [v for p in precisions for v in ladder(p, p == "bf16" and kernel_size in setup.args.compile_kernel_sizes)]


def open_trial(setup: Setup, stack: contextlib.ExitStack, data: tuple[torch.Tensor, torch.Tensor],
               kernel_size: int, window: str, variant: Variant) -> Trial:
    """Build the model as :func:`train` would run it, and take its warm-up steps."""
    model = build_model(setup, kernel_size, window).train()
    module = stack.enter_context(accelerated(model, variant.settings))
    train = setup.suite.train
    optimizer = torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    source = BatchSource(*data, storage=setup.device if variant.data_on_device else "cpu", target=setup.device,
                         channels_last=variant.channels_last)
    trial = Trial(kernel_size, window, variant, module, optimizer, endless_batches(source, setup))
    start = time.perf_counter()
    trial.step()  # compiles a compiled variant
    synchronize(setup.device)
    trial.first_step_seconds = time.perf_counter() - start
    for _ in range(setup.args.warmup - 1):
        trial.step()
    return trial


def time_trial(setup: Setup, trial: Trial) -> None:
    steps = setup.args.bf16_steps if trial.variant.precision == "bf16" else setup.args.steps
    synchronize(setup.device)
    start = time.perf_counter()
    for _ in range(steps):
        trial.step()
    synchronize(setup.device)
    trial.samples.append(steps * setup.batch_size / (time.perf_counter() - start))


def measure_kernel_size(setup: Setup, kernel_size: int) -> list[Trial]:
    """Every (window, variant) of one kernel size, repeats interleaved; models freed afterwards."""
    torch.compiler.reset()  # fresh graph cache: each kernel size compiles its own models
    data = timing_images(setup)
    with contextlib.ExitStack() as stack:
        trials = [open_trial(setup, stack, data, kernel_size, window, variant)
                  for variant in variants_for(setup, kernel_size) for window in setup.suite.windows]
        for _ in range(setup.args.repeats):
            for trial in trials:
                time_trial(setup, trial)
        for trial in trials:  # keep the numbers, let the models go
            trial.module = trial.optimizer = trial.batches = None  # type: ignore[assignment]
    print(f"  k={kernel_size}: " + ", ".join(f"{t.variant.label} {t.window} {t.median:.0f}" for t in trials) + " img/s",
          file=sys.stderr, flush=True)
    return trials


# --------------------------------------------------------------------------------------------
# Attack time


@dataclass(frozen=True)
class AttackTiming:
    """One attack on one model, per image: seconds and iterations (DeepFool steps, spatial transforms tried).

    ``expected_iterations``: the mean that trained models needed (``--iterations-from``), if known.
    """

    seconds: float
    iterations: float
    expected_iterations: float | None = None

    @property
    def expected_seconds(self) -> float:
        """Seconds scaled in proportion to the expected iterations (each costs about the same)."""
        if self.expected_iterations is None or self.iterations == 0:
            return self.seconds
        return self.seconds * self.expected_iterations / self.iterations


def stored_iterations(path: Path | None) -> dict[str, float]:
    """Mean iterations per attacked image of each attack in a run's ``samples.csv.gz`` (empty without one)."""
    if path is None:
        return {}
    samples = pd.read_csv(path)
    return samples[samples["attacked"]].groupby("attack")["iterations"].mean().to_dict()


def measure_attacks(setup: Setup, kernel_size: int, window: str, expected: dict[str, float]) -> dict[str, AttackTiming]:
    """Per-image time of each of the suite's attacks on the untrained model (fp32, as attacks run)."""
    count = setup.args.attack_images
    if count < 1:
        return {}
    model = build_model(setup, kernel_size, window).eval()
    images = torch.rand((count, *setup.image_shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        labels = model(images.to(setup.device)).argmax(1).cpu()  # every image "correct": every image attacked
    timings = {}
    for spec in setup.suite.attacks:
        attack = ATTACKS.create(spec.name, **spec.params)
        synchronize(setup.device)
        start = time.perf_counter()
        results = [result for result in attack(model, images, labels) if result.attacked]
        synchronize(setup.device)
        if results:  # a prediction may flip under the attacks' strict fp32 and leave an image unattacked
            iterations = statistics.mean(result.iterations for result in results)
            timings[spec.name] = AttackTiming((time.perf_counter() - start) / len(results), iterations,
                                              expected.get(spec.name))
    return timings


# --------------------------------------------------------------------------------------------
# Tables


def throughput_table(trials: list[Trial]) -> pd.DataFrame:
    """Rows (k, window), one column of median images/s per variant."""
    frame = pd.DataFrame([{"k": t.kernel_size, "window": t.window, "variant": t.variant.label, "img/s": t.median}
                          for t in trials])
    table = frame.pivot(index=["k", "window"], columns="variant", values="img/s")
    rows = pd.MultiIndex.from_frame(frame[["k", "window"]].drop_duplicates())  # measured order: none before hamming
    return table.reindex(index=rows, columns=list(dict.fromkeys(frame["variant"]))).reset_index()


def overhead_table(trials: list[Trial]) -> pd.DataFrame:
    """Rows k, per variant: median over repeats of the paired hamming / none time ratio, minus 1."""
    by_key = {(t.kernel_size, t.window, t.variant.label): t.samples for t in trials}
    rows = []
    for k in dict.fromkeys(t.kernel_size for t in trials):
        row: dict[str, Any] = {"k": k}
        for label in dict.fromkeys(t.variant.label for t in trials if t.kernel_size == k):
            pairs = zip(by_key[k, "none", label], by_key[k, "hamming", label])
            row[label] = statistics.median(none / hamming for none, hamming in pairs) - 1
        rows.append(row)
    return pd.DataFrame(rows)


def _ratio_line(name: str, ratios: list[float]) -> str:
    return (f"- {name}: {statistics.geometric_mean(ratios):.2f}x (geometric mean over {len(ratios)} models; "
            f"{min(ratios):.2f}x to {max(ratios):.2f}x)")


def fastest(trials: list[Trial], precision: str) -> dict[tuple[int, str], float]:
    """(k, window) -> images/s of the fastest measured variant of ``precision``."""
    best: dict[tuple[int, str], float] = {}
    for trial in (t for t in trials if t.variant.precision == precision):
        key = (trial.kernel_size, trial.window)
        best[key] = max(best.get(key, 0.0), trial.median)
    return best


def option_gains(trials: list[Trial]) -> list[str]:
    """Each ladder step's speed-up over the step before it, and bf16's over fp32."""
    ips = {(t.kernel_size, t.window, t.variant): t.median for t in trials}
    lines = []
    for precision in PRECISIONS:
        rungs = ladder(precision, with_compile=True)
        for before, after in zip(rungs, rungs[1:]):
            ratios = [ips[k, w, after] / ips[k, w, v] for (k, w, v) in ips if v == before and (k, w, after) in ips]
            if ratios:
                lines.append(_ratio_line(f"{after.label} vs {before.label}", ratios))
    fp32, bf16 = fastest(trials, "fp32"), fastest(trials, "bf16")
    if bf16:
        lines.append(_ratio_line("fastest bf16 vs fastest fp32", [bf16[key] / fp32[key] for key in fp32]))
    return lines


def compile_lines(setup: Setup, trials: list[Trial]) -> list[str]:
    """Compile time and the steps it takes to earn it back, per compiled model."""
    ips = {(t.kernel_size, t.window, t.variant): t for t in trials}
    lines = []
    for trial in (t for t in trials if t.variant.compile):
        eager = ips[trial.kernel_size, trial.window, dataclasses.replace(trial.variant, compile=False)]
        saved = setup.batch_size / eager.median - setup.batch_size / trial.median  # seconds per step
        cost = trial.first_step_seconds - setup.batch_size / trial.median
        payback = f"earned back after {cost / saved:,.0f} steps" if saved > 0 else "never earned back (no gain)"
        lines.append(f"- k={trial.kernel_size} {trial.window}: compiling took {cost:.1f} s, {payback}")
    if lines:
        lines.append(f"- `compile = \"auto\"` compiles runs of at least {COMPILE_MIN_STEPS:,} steps per model; "
                     f"this preset: {preset_steps(setup):,}.")
    return lines


def preset_steps(setup: Setup) -> int:
    return setup.suite.train.epochs * -(-setup.train_images // setup.batch_size)


# --------------------------------------------------------------------------------------------
# Projection


def makespan(durations: list[float], workers: int) -> float:
    """Wall time of independent jobs on ``workers`` machines, longest job first to the least loaded."""
    loads = [0.0] * workers
    for duration in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + duration)
    return max(loads)


def projection(setup: Setup, trials: list[Trial], attack_timings: dict[tuple[int, str], dict[str, AttackTiming]]) -> pd.DataFrame:
    """Projected hours of the whole suite per precision (fastest measured variant): GPU-hours and wall time."""
    suite = setup.suite
    rows = []
    for precision in dict.fromkeys(t.variant.precision for t in trials):
        best = fastest(trials, precision)
        train = {key: suite.train.epochs * setup.train_images / ips for key, ips in best.items()}
        attack = {key: suite.attack_samples * sum(t.expected_seconds for t in attack_timings.get(key, {}).values())
                  for key in best}
        models = [train[key] + attack[key] for key in best for _ in suite.seeds]
        row: dict[str, Any] = {"precision": precision, "models": len(models),
                               "training GPU-h": len(suite.seeds) * sum(train.values()) / 3600,
                               "attack GPU-h": len(suite.seeds) * sum(attack.values()) / 3600}
        row |= {f"wall h, {gpus} GPU{'s' * (gpus > 1)}": makespan(models, gpus) / 3600 for gpus in setup.args.gpus}
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Report


def environment(setup: Setup) -> str:
    suite, args = setup.suite, setup.args
    if setup.device.type == "cuda":
        where = (f"{torch.cuda.get_device_name(setup.device)}, cuDNN TF32 convolutions "
                 f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'} in fp32 training")
    else:
        where = (f"NO CUDA DEVICE: {platform.machine()} CPU, {torch.get_num_threads()} thread(s); small sizes, "
                 f"these are not GPU numbers (and +dev changes nothing: the data are on the CPU either way)")
    reduced = f" (reduced: {', '.join(args.overrides)})" if args.overrides else ""
    return (f"Suite `{suite.name}`{reduced}: model {suite.model} {suite.model_args}, batch {setup.batch_size}, "
            f"{setup.data_note}. Medians of {args.repeats} timings of {args.steps} fp32 / {args.bf16_steps} bf16 "
            f"steps after {args.warmup} warm-up step(s). {where}; torch {torch.__version__}.")


def _shown(table: pd.DataFrame, fmt: str) -> str:
    shown = table.copy()
    for column in shown.columns:
        if column not in ("k", "window"):
            shown[column] = shown[column].map(lambda value: "" if pd.isna(value) else format(value, fmt))
    return shown.to_markdown(index=False)


def overhead_lines(overhead: pd.DataFrame) -> list[str]:
    lines = []
    for column in overhead.columns[1:]:
        values = overhead[column].dropna()
        verdict = "meets" if values.max() < OVERHEAD_TARGET else "misses"
        lines.append(f"- {column}: median {values.median():+.1%}, worst {values.max():+.1%} over k: {verdict} "
                     f"the target < {OVERHEAD_TARGET:.0%}")
    return lines


def expected_note(setup: Setup) -> str:
    source = setup.args.iterations_from
    if source is None:
        return "No stored run was given (--iterations-from): the projection uses the times as measured."
    means = ", ".join(f"{name} {value:.1f}" for name, value in stored_iterations(source).items())
    shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    return f"Expected ms/image: scaled to the mean iterations per attacked image in {shown} ({means}); the projection uses these."


def attack_table(attack_timings: dict[tuple[int, str], dict[str, AttackTiming]]) -> pd.DataFrame:
    rows = []
    for (k, window), timings in attack_timings.items():
        row: dict[str, Any] = {"k": k, "window": window}
        for name, timing in timings.items():
            row |= {f"{name} ms/image": 1000 * timing.seconds, f"{name} iterations": timing.iterations,
                    f"{name} expected ms/image": 1000 * timing.expected_seconds}
        rows.append(row)
    return pd.DataFrame(rows)


def projection_scope(setup: Setup, attacks_timed: bool) -> str:
    """What the projection covers, in one paragraph."""
    suite, measured = setup.suite, setup.args.kernel_sizes
    kernel_sizes = f"{len(measured)} kernel sizes"
    if sorted(measured) != sorted(suite.kernel_sizes):
        kernel_sizes = (f"Only the measured kernel sizes (k = {', '.join(map(str, measured))}; the suite has "
                        f"{', '.join(map(str, suite.kernel_sizes))})")
    attacks = (f"plus {suite.attack_samples} attacked images per model at the expected times above"
               if attacks_timed else "without attacks (not timed)")
    reduced = " Sizes reduced as above: not the preset's model." if setup.args.overrides else ""
    return (f"{kernel_sizes} x {len(suite.windows)} windows x {len(suite.seeds)} seeds, {suite.train.epochs} epochs "
            f"of {setup.train_images:,} images ({preset_steps(setup):,} steps per model) at the fastest measured "
            f"variant of each precision, {attacks}; each GPU trains and attacks whole models, longest first.{reduced}")


def markdown(setup: Setup, trials: list[Trial], attack_timings: dict[tuple[int, str], dict[str, AttackTiming]],
             seconds: float) -> str:
    suite = setup.suite
    overhead = overhead_table(trials)
    spread = max(max(t.samples) / min(t.samples) for t in trials)
    lines = ["# GPU-speed training: speed options, windowing overhead, projected wall time", "",
             environment(setup), "",
             "Variants: `+cl` channels-last, `+dev` data held and augmented on the device, `+compile` torch.compile; "
             "each adds to the one before.", "",
             "## Training throughput (images/s)", "", _shown(throughput_table(trials), ".0f"), "",
             "## Windowing overhead (hamming / none time - 1, paired per repeat)", "", _shown(overhead, "+.1%"), "",
             *overhead_lines(overhead),
             f"- Timing noise: the largest max/min ratio over the repeats of one configuration is {spread:.2f}.", "",
             "## What each option gives", "", *option_gains(trials), *compile_lines(setup, trials), ""]
    if attack_timings:
        lines += [f"## Attack time (fp32, untrained model, {setup.args.attack_images} images)", "",
                  _shown(attack_table(attack_timings), ".1f"), "",
                  "Iterations: DeepFool steps, or spatial transforms tried, per image. The untrained model is "
                  "attacked with its own predictions as labels; a trained model needs other counts. " + expected_note(setup),
                  ""]
    lines += [f"## Projected wall time of `{suite.name}`", "", projection_scope(setup, bool(attack_timings)), "",
              projection(setup, trials, attack_timings).to_markdown(index=False, floatfmt=".2f"), "",
              f"Benchmark wall time: {seconds:.0f} s.", ""]
    return "\n".join(lines)


def records(setup: Setup, trials: list[Trial]) -> pd.DataFrame:
    device = torch.cuda.get_device_name(setup.device) if setup.device.type == "cuda" else f"cpu ({platform.machine()})"
    return pd.DataFrame([{
        "kernel_size": t.kernel_size, "window": t.window, **dataclasses.asdict(t.variant),
        "images_per_second": t.median, "min_images_per_second": min(t.samples), "max_images_per_second": max(t.samples),
        "first_step_seconds": t.first_step_seconds, "repeats": len(t.samples), "batch_size": setup.batch_size,
        "model_args": str(setup.suite.model_args), "device": device, "torch": torch.__version__,
    } for t in trials])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    setup = make_setup(args)
    if not {"none", "hamming"} <= set(setup.suite.windows):
        raise SystemExit(f"the windowing overhead needs windows none and hamming; suite {setup.suite.name} has "
                         f"{list(setup.suite.windows)}")
    print(environment(setup), file=sys.stderr, flush=True)
    trials = [trial for k in args.kernel_sizes for trial in measure_kernel_size(setup, k)]
    expected = stored_iterations(args.iterations_from)
    attack_timings = {(k, w): measure_attacks(setup, k, w, expected) for k in args.kernel_sizes for w in setup.suite.windows}
    args.out.mkdir(parents=True, exist_ok=True)
    records(setup, trials).to_csv(args.out / "gpu_training.csv", index=False)
    report = markdown(setup, trials, {key: value for key, value in attack_timings.items() if value},
                      time.perf_counter() - start)
    (args.out / "gpu_training.md").write_text(report)
    print(report)
    print(f"wrote {args.out / 'gpu_training.csv'} and {args.out / 'gpu_training.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
