"""Where the time of a suite run goes: train / attacks / diagnostics / report, per variant.

Run by ``make bench-quick``::

    python benchmarks/bench_quick.py [--suite quick] [--repeats 1] [--set KEY=VALUE ...]
        [--variant 'LABEL: CLI ARGS' ...] [--bare-steps 60] [--out bench]
    python benchmarks/bench_quick.py --smoke --out /tmp/bench   # seconds: does it still run?

Each variant is one ``robustbench-win run SUITE`` in a fresh output folder and a fresh
checkpoint store (nothing reused), timed from outside; its phases come from the run's own
records (``runs/*/timings.json``: training, clean accuracy, each attack and diagnostic, summed
over models), the report phase is the rest of the wall time (report, figures and the start of
the process). Variants are interleaved within each repeat, so a slow-down of a shared machine
hits all of them alike; the table shows medians over repeats. ``--set`` options apply to every
variant (for example a smaller matrix), a variant's own arguments come after them.

The bare-loop ratio: the suite's training steps per second on its largest-kernel Hamming model
against a bare PyTorch loop (same model, batch, optimiser, one thread per process as the
variant used), timed in this process right after. A ratio well below 1 means the suite's
training loop costs more than the arithmetic it asks for.

Writes ``quick.csv`` and ``quick.md`` into ``--out`` (default ``bench/``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from robustbench_win.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
CLI = [sys.executable, "-m", "robustbench_win"]
DEFAULT_VARIANTS = ("preset:", "2 workers x 1 thread: --jobs 2 --threads 1")
# --smoke: two models (k = 3, both windows, seed 0) trained for one epoch on 400 digits, 4 digits
# attacked, one variant on one thread, 5 bare-loop steps: checks that the benchmark runs, measures nothing.
SMOKE_OVERRIDES = ["kernel_sizes=[3]", "seeds=[0]", "train_size=400", "train.epochs=1", "train.milestones=[]",
                   "attack_samples=4"]
SMOKE_VARIANTS = ("1 thread: --threads 1",)
SMOKE_BARE_STEPS = 5


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` prints it (``platform`` as a fallback)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.machine()


def run_variant(suite: str, common: list[str], args: list[str], workdir: Path) -> dict[str, float]:
    """One suite run in fresh folders; its phases in seconds and its mean clean accuracy."""
    out, checkpoints = workdir / "out", workdir / "checkpoints"
    command = [*CLI, "run", suite, "--quiet", "--out", str(out), "--checkpoint-dir", str(checkpoints), *common, *args]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    phases = {"wall": wall, "train": 0.0, "clean": 0.0}
    for path in sorted((out / "runs").glob("*/timings.json")):
        timings = json.loads(path.read_text())
        phases["train"] += timings.get("train_seconds", 0.0)
        phases["clean"] += timings.get("clean_seconds", 0.0)
        for kind in ("attack_seconds", "diagnostic_seconds"):
            for name, seconds in timings.get(kind, {}).items():
                key = name if kind == "attack_seconds" else "diagnostics"
                phases[key] = phases.get(key, 0.0) + seconds
    run_total = json.loads((out / "meta.json").read_text())["timings"]["total_seconds"]
    phases["report+start"] = wall - run_total
    clean = pd.read_csv(out / "clean.csv")
    phases["clean acc"] = float(clean["accuracy"].mean())
    phases["models"] = len(clean)
    largest = clean[clean["window"] == "hamming"].sort_values("kernel_size").iloc[-1]
    phases["largest train s"] = float(largest["train_seconds"])
    return phases


def bare_loop_steps_per_second(suite: str, overrides: list[str], steps: int, threads: int) -> tuple[float, int, int]:
    """Steps per second of a bare SGD loop on the suite's largest-kernel Hamming model."""
    from robustbench_win.suite import load_suite

    config = load_suite(suite, overrides)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kernel = max(config.kernel_sizes)
    model = MODELS.create(config.model, in_channels=1, num_classes=10, kernel_size=kernel, window="hamming",
                          **config.model_args).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.train.lr, momentum=config.train.momentum,
                                weight_decay=config.train.weight_decay)
    batch = config.train.batch_size
    images, labels = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start), kernel, batch


def suite_steps(suite: str, overrides: list[str]) -> int:
    """Optimiser steps per model of the suite (its ``train_size``, else the quick data's 4,000 training digits)."""
    from robustbench_win.suite import load_suite

    config = load_suite(suite, overrides)
    return config.train.epochs * -(-(config.train_size or 4000) // config.train.batch_size)


def parse_variant(text: str) -> tuple[str, list[str]]:
    label, _, args = text.partition(":")
    return label.strip(), shlex.split(args)


def threads_of(args: list[str]) -> int:
    return int(args[args.index("--threads") + 1]) if "--threads" in args else torch.get_num_threads()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every variant (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="suite override applied to every variant (repeatable)")
    parser.add_argument("--variant", action="append", metavar="'LABEL: CLI ARGS'",
                        help=f"a variant: label, colon, extra `run` arguments (default: {list(DEFAULT_VARIANTS)})")
    parser.add_argument("--bare-steps", type=int, default=60, help="timed steps of the bare loop (0: skip it)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: two tiny models, 4 digits attacked, one variant, 5 bare steps; measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.overrides = [*SMOKE_OVERRIDES, *args.overrides]
        args.variant, args.repeats, args.bare_steps = args.variant or list(SMOKE_VARIANTS), 1, SMOKE_BARE_STEPS
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    common = [part for override in args.overrides for part in ("--set", override)]
    load = os.getloadavg()[0]

    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in variants}
    for repeat in range(args.repeats):
        for label, extra in variants:
            with tempfile.TemporaryDirectory(prefix="bench-quick-") as workdir:
                runs[label].append(run_variant(args.suite, common, extra, Path(workdir)))
            print(f"repeat {repeat + 1} {label}: {runs[label][-1]['wall']:.0f} s", file=sys.stderr)

    rows = []
    for label, extra in variants:
        phases = {key: statistics.median(run[key] for run in runs[label]) for key in runs[label][0]}
        row = {"variant": label, "run args": " ".join(extra) or "-", **phases}
        overrides = [*args.overrides, *[extra[i + 1] for i, a in enumerate(extra) if a == "--set"]]
        if args.bare_steps:
            bare, kernel, batch = bare_loop_steps_per_second(args.suite, overrides, args.bare_steps, threads_of(extra))
            suite_rate = suite_steps(args.suite, overrides) / phases["largest train s"]
            row["bare loop steps/s"] = bare
            row["suite / bare"] = suite_rate / bare
        rows.append(row)
    table = pd.DataFrame(rows)
    setup = (f"Suite `{args.suite}` {' '.join(common)}; {args.repeats} repeat(s), medians; CPU {cpu_model()}, "
             f"{os.cpu_count()} CPU(s); torch {torch.__version__}; load average at start {load:.2f}. Phases in "
             f"seconds summed over models (train, clean accuracy, each attack, diagnostics); report+start is the "
             f"wall time outside the run (report, figures, process start).")
    text = (f"# Suite phases\n\n{setup}\n\nCommand: `python benchmarks/bench_quick.py {' '.join(sys.argv[1:])}`\n\n"
            f"{table.to_markdown(index=False, floatfmt='.3g')}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "quick.csv", index=False, float_format="%.6g")
    (args.out / "quick.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
