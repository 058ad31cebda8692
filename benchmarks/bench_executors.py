"""Wall time of a suite run in one process vs in worker processes, side by side in one run.

Runs the same suite (default: the ``quick`` preset) through ``robustbench-win run`` once in one
process with all of this machine's torch threads, and once with ``--jobs N`` workers sharing
them out (``--threads`` = threads / N each), alternating the two over ``--repeats`` rounds.
Every run trains its models from scratch (a fresh checkpoint store and run folder), so the
times cover training, clean accuracy, every attack and the report.

Both ways compute the same cells; their numbers differ only by thread count per model (see
``docs/reproducibility.md``). Writes ``bench/executors.md`` and ``bench/executors.csv``.

Usage::

    .venv/bin/python benchmarks/bench_executors.py                       # quick preset, about 10 min on 2 cores
    .venv/bin/python benchmarks/bench_executors.py --set 'kernel_sizes=[3,7]' --repeats 1
    .venv/bin/python benchmarks/bench_executors.py --smoke --out /tmp/bench   # does it still run?
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
# --smoke: two models (k = 3, both windows) trained for one epoch on 400 digits, 4 attacked.
SMOKE_OVERRIDES = ["kernel_sizes=[3]", "seeds=[0]", "train_size=400", "train.epochs=1", "train.milestones=[]",
                   "attack_samples=4"]


def time_run(suite: str, overrides: list[str], jobs: int, threads: int) -> float:
    """Seconds one ``robustbench-win run`` takes from scratch (fresh store and run folder)."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "robustbench_win", "run", suite, "--out", f"{scratch}/out",
                   "--checkpoint-dir", f"{scratch}/checkpoints", "--quiet", "--jobs", str(jobs),
                   "--threads", str(threads), *[arg for item in overrides for arg in ("--set", item)]]
        start = time.perf_counter()
        # The report at the end of the command is included: it takes the same few seconds
        # either way.
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true", help="two tiny models, 4 digits attacked; measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.overrides = [*SMOKE_OVERRIDES, *args.overrides]
    threads = torch.get_num_threads()
    ways = {"sequential": (1, threads), f"--jobs {args.jobs}": (args.jobs, max(1, threads // args.jobs))}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for repeat in range(args.repeats):
        for name, (jobs, per_worker) in ways.items():
            seconds[name].append(time_run(args.suite, args.overrides, jobs, per_worker))
            print(f"repeat {repeat + 1}: {name}: {seconds[name][-1]:.1f} s", flush=True)
    base = statistics.median(seconds["sequential"])
    rows = [{"way": name, "jobs": jobs, "threads_per_worker": per_worker, "repeats": len(seconds[name]),
             "median_seconds": statistics.median(seconds[name]), "speed_up": base / statistics.median(seconds[name])}
            for name, (jobs, per_worker) in ways.items()]
    table = pd.DataFrame(rows)
    cpu = platform.processor() or platform.machine()
    header = (f"# Suite wall time: one process vs worker processes\n\nSuite `{args.suite}` "
              f"{' '.join(args.overrides)}; {threads} torch threads on this machine ({cpu}); "
              f"median over {args.repeats} run(s) each, the two ways alternated; from scratch "
              f"(training included). Command: `python benchmarks/bench_executors.py "
              f"{' '.join(sys.argv[1:])}`\n\n")
    text = header + table.to_markdown(index=False, floatfmt=".2f") + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "executors.md").write_text(text)
    table.to_csv(args.out / "executors.csv", index=False)


if __name__ == "__main__":
    main()
