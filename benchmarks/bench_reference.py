"""How strong the long-budget reference is: restarts from other starting points and four times the budget.

Run by ``make bench-reference``::

    python benchmarks/bench_reference.py [--models 3:none,3:hamming,11:none,11:hamming] [--samples 100]
        [--suite quick] [--set KEY=VALUE ...] [--out bench]
    python benchmarks/bench_reference.py --suite cifar10 --set dataset=imagefolder:/work/shared/datasets/cifar10-jpeg \\
        --set 'dataset_args={display_name="CIFAR-10 (JPEG copy)"}' --models 3:none,11:hamming --name reference_cifar10
    python benchmarks/bench_reference.py --smoke --out /tmp/bench   # seconds: does it still run?

The models and images are those of ``bench_near_minimal.py`` (a preset's seed-0 models from the
checkpoint store; the runner's class-balanced draw of held-out images, seed 1234; the
correctly classified ones are attacked).

**The reference** per image is the smallest verified L2 norm over ``alma(500)`` (from the
clean image), ``fmn(400)`` and ``ddn(400)`` (from projected DeepFool's boundary point, their
defaults), every sample running all steps (patience 0): ALMA at 500 steps and the strong
attack at four times the largest preset budget (``fmn`` at 100 steps), plus DDN.

**Restarts**: the same three attacks all started from the clean image, all from DeepFool's
point, and all from a random point (``init="random"``, uniform in an L2 ball whose radius is a
quarter of the reference's median norm on that model, clipped into [0, 1], seeded per image);
and the reference at four times its budget (``alma(2000)``, ``fmn(1600)``, ``ddn(1600)``).
The *strongest* norm of an image is the smallest over all of these. Per model, each row says
how close it comes to the strongest (median and 90th percentile of the ratio, share within
1 %) and on how many images it beats the reference by more than 1 % (for the 4x row: how
often the reference itself improves with four times the budget). Writes ``reference.csv`` and
``reference.md`` (``--name``) into ``--out`` (default ``bench/``) and prints the markdown.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from robustbench_win.data.datasets import stratified_subset
from robustbench_win.data.prepare import prepare_data
from robustbench_win.suite import load_suite
from robustbench_win.train.checkpoints import CheckpointStore

HERE = Path(__file__).resolve().parent


def _sibling(stem: str) -> ModuleType:
    """Another script of ``benchmarks/``, imported from its file (the scripts are no package)."""
    name = f"_benchmark_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_near_minimal = _sibling("bench_near_minimal")
Setting = _near_minimal.Setting
run_attack = _near_minimal.run_attack
quick_model = _near_minimal.quick_model
parse_models = _near_minimal.parse_models
quantile = _near_minimal.quantile
cpu_model = _near_minimal.cpu_model
ATTACKED_IMAGES_SEED: int = _near_minimal.ATTACKED_IMAGES_SEED
SEED: int = _near_minimal.SEED

BENCH_DIR = HERE.parent / "bench"
DEFAULT_MODELS = "3:none,3:hamming,11:none,11:hamming"
ALMA_STEPS = 500  # the reference's ALMA: at least 500 steps
STRONG_STEPS = 400  # fmn and ddn: 4 x the largest preset budget (fmn, 100 steps)
BUDGET_FACTOR = 4  # the longer reference runs this many times the steps
# Where each restart starts every attack of the reference (the reference itself: each attack's default).
STARTS = {"clean": "none", "deepfool": "deepfool", "random": "random"}
DEFAULT_STARTS = {"alma": "none", "fmn": "deepfool", "ddn": "deepfool"}
RANDOM_RADIUS_SHARE = 0.25  # a random start's ball: this share of the reference's median norm on the model
WITHIN = 0.01  # "within 1 %" and "beats by more than 1 %"
# --smoke: one model trained for two epochs on 1,000 digits (checkpoints under --out), 10 digits,
# budgets divided by 50: checks that the benchmark runs, measures nothing.
SMOKE_OVERRIDES = ["train_size=1000", "train.epochs=2", "train.milestones=[]"]
SMOKE_SAMPLES = 10
SMOKE_SCALE = 0.02


def reference_settings(scale: float = 1.0, start: str | None = None, start_radius: float | None = None) -> list[Setting]:
    """The reference's attacks: ``alma``, ``fmn`` and ``ddn``, all steps run.

    Args:
        scale: Multiplies every step budget (4: the longer reference).
        start: A key of :data:`STARTS` for every attack, or ``None`` for each one's default start.
        start_radius: Radius of a random start (``start="random"`` only).

    Returns:
        One setting per attack, labelled e.g. ``alma(500)`` or ``fmn(400) from random``.
    """
    settings = []
    for name, steps in (("alma", ALMA_STEPS), ("fmn", STRONG_STEPS), ("ddn", STRONG_STEPS)):
        budget = max(1, round(steps * scale))
        init = DEFAULT_STARTS[name] if start is None else STARTS[start]
        kwargs: dict[str, Any] = {"steps": budget, "patience": 0, "init": init}
        if init == "random":
            kwargs["start_radius"] = start_radius
        suffix = "" if start is None or init == DEFAULT_STARTS[name] else f" from {start}"
        settings.append(Setting(f"{name}({budget}){suffix}", name, kwargs))
    return settings


def describe_reference(scale: float = 1.0) -> str:
    """The reference in words, for a report."""
    parts = ", ".join(f"`{s.label}`" for s in reference_settings(scale))
    return (f"the smallest verified norm over {parts} (ALMA from the clean image, FMN and DDN from projected "
            "DeepFool's boundary point; every image runs all steps)")


def norms_over(runs: dict[str, dict[str, Any]], settings: Sequence[Setting]) -> np.ndarray:
    """Per image, the smallest norm over the runs of ``settings`` (+inf where all failed)."""
    return np.min(np.stack([runs[s.label]["norms"] for s in settings]), axis=0)


def closeness(norms: np.ndarray, strongest: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How close ``norms`` come to ``strongest``, and how often they beat ``reference`` by more than 1 %."""
    fooled = np.isfinite(strongest)
    ratio = norms[fooled] / strongest[fooled]
    nan = math.nan
    return {
        "median / strongest": float(np.median(ratio)) if ratio.size else nan,
        "p90 / strongest": quantile(ratio, 0.9),
        "within 1% of strongest": float((ratio <= 1 + WITHIN).mean()) if ratio.size else nan,
        "beats reference by >1%": float((norms < reference / (1 + WITHIN)).mean()) if norms.size else nan,
    }


def restart_runs(model_name: str, model: nn.Module, x: Tensor, y: Tensor, scale: float) -> tuple[
        dict[str, dict[str, Any]], dict[str, list[Setting]]]:
    """Every run of one model, by label, and the settings of each row (reference, restarts, 4x)."""
    runs: dict[str, dict[str, Any]] = {}

    def run(settings: Sequence[Setting]) -> None:
        for setting in settings:
            if setting.label not in runs:
                runs[setting.label] = run_attack(setting.create(), model, x, y)
                print(f"{model_name:12s} {setting.label:28s} {runs[setting.label]['seconds']:7.1f} s", file=sys.stderr)

    rows = {"reference": reference_settings(scale)}
    run(rows["reference"])
    reference = norms_over(runs, rows["reference"])
    finite = reference[np.isfinite(reference)]
    radius = RANDOM_RADIUS_SHARE * float(np.median(finite)) if finite.size else 0.1
    for start in STARTS:
        rows[f"restart from {start}"] = reference_settings(scale, start, radius)
    rows[f"reference, {BUDGET_FACTOR}x budget"] = reference_settings(scale * BUDGET_FACTOR)
    for settings in rows.values():
        run(settings)
    return runs, rows


def model_rows(model_name: str, model: nn.Module, x: Tensor, y: Tensor, scale: float) -> list[dict[str, Any]]:
    """The rows of one model: the reference, each restart, 4x the budget, and the strongest."""
    runs, rows = restart_runs(model_name, model, x, y, scale)
    reference = norms_over(runs, rows["reference"])
    strongest = np.min(np.stack([run["norms"] for run in runs.values()]), axis=0)
    table = []
    for label, settings in rows.items():
        norms = norms_over(runs, settings)
        table.append({"model": model_name, "row": label, "attacks": " + ".join(s.label for s in settings),
                      "attacked": len(norms), "success rate": float(np.isfinite(norms).mean()) if norms.size else math.nan,
                      **closeness(norms, strongest, reference),
                      "seconds": sum(runs[s.label]["seconds"] for s in settings)})
    table.append({"model": model_name, "row": "strongest (all of the above)", "attacks": "", "attacked": len(strongest),
                  "success rate": float(np.isfinite(strongest).mean()) if strongest.size else math.nan,
                  **closeness(strongest, strongest, reference), "seconds": sum(r["seconds"] for r in runs.values())})
    return table


def benchmark(suite: str, overrides: list[str], models: list[tuple[int, str]], samples: int, scale: float,
              store: CheckpointStore, data_dir: Path | None) -> tuple[pd.DataFrame, dict[str, float]]:
    """The table of every model and the models' accuracy on the drawn images."""
    config = load_suite(suite, overrides)
    data = prepare_data(config.dataset, train_size=config.train_size, test_size=config.test_size,
                        data_dir=data_dir, download=False, dataset_args=config.dataset_args)
    indices = stratified_subset(data.test_labels, min(samples, len(data.test_labels)), ATTACKED_IMAGES_SEED)
    x, y = data.test_tensors(indices)
    rows, accuracy = [], {}
    for kernel_size, window in models:
        model_name = f"k{kernel_size}-{window}"
        model = quick_model(config, data, kernel_size, window, store)
        with torch.no_grad():
            accuracy[model_name] = float((model(x).argmax(1) == y).float().mean())
        rows += model_rows(model_name, model, x, y, scale)
    return pd.DataFrame(rows), accuracy


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Shares as percentages, ratios to four decimals, seconds to one."""
    shown = table.copy()
    for column in ("success rate", "within 1% of strongest", "beats reference by >1%"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else f"{v:.0%}")
    for column in ("median / strongest", "p90 / strongest"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.4f}"))
    shown["seconds"] = shown["seconds"].map(lambda v: f"{v:.1f}")
    return shown


def markdown(table: pd.DataFrame, accuracy: dict[str, float], args: argparse.Namespace, scale: float) -> str:
    """The report: set-up, what each row and column is, and the table."""
    setup = (f"Models: the `{args.suite}` suite's (seed {SEED}"
             + (f"; overrides {', '.join(f'`{o}`' for o in args.set)}" if args.set else "")
             + f"), accuracy on the drawn images {', '.join(f'{k} {v:.0%}' for k, v in accuracy.items())}. "
             f"{args.samples} held-out images (the runner's class-balanced draw, seed {ATTACKED_IMAGES_SEED}); the "
             f"correctly classified ones are attacked. CPU {cpu_model()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s).")
    return (
        f"# How strong is the reference? Restarts and {BUDGET_FACTOR}x the budget\n\n{setup}\n\n"
        f"Command: `{' '.join(['python', 'benchmarks/bench_reference.py', *sys.argv[1:]])}`\n\n"
        f"Reference per image: {describe_reference(scale)}. Restarts: the same attacks all from the clean image, "
        "all from DeepFool's point, and all from a random point in an L2 ball of "
        f"{RANDOM_RADIUS_SHARE:g} x the reference's median norm on the model (seeded per image); "
        f"`reference, {BUDGET_FACTOR}x budget`: every step budget times {BUDGET_FACTOR}. The strongest norm of an "
        "image is the smallest over all rows.\n\n"
        "Columns: `median / strongest` and `p90 / strongest` are the median and 90th percentile, over the images "
        "some row fooled, of the row's norm over the strongest (a failure is inf); `within 1% of strongest` the "
        "share of them with norm <= 1.01 x strongest; `beats reference by >1%` the share of attacked images on "
        f"which the row's norm is below the reference's / 1.01 (for the {BUDGET_FACTOR}x row: how often the "
        "reference itself improves by more than 1 % with that budget); `seconds` the wall time of the row's "
        "attacks (runs shared between rows counted in each).\n\n"
        f"{format_table(table).to_markdown(index=False)}\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick", help="preset name or TOML path (default quick)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a suite key, as `robustbench-win run --set` (repeatable)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the data set's files are (default: its own)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"kernel:window list (default {DEFAULT_MODELS})")
    parser.add_argument("--samples", type=int, default=100, help="held-out images drawn (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--name", default="reference", help="stem of the files written (default reference)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one tiny model (checkpoints under --out), 10 images, budgets / 50; measures nothing")
    args = parser.parse_args(argv)
    overrides, store, scale = list(args.set), CheckpointStore(), 1.0
    if args.smoke:
        args.models, args.samples, scale = "3:none", SMOKE_SAMPLES, SMOKE_SCALE
        overrides, store = [*SMOKE_OVERRIDES, *overrides], CheckpointStore(args.out / "checkpoints")
    if args.samples < 1 or args.threads < 1:
        parser.error("--samples and --threads must be positive")
    torch.set_num_threads(args.threads)
    table, accuracy = benchmark(args.suite, overrides, parse_models(args.models), args.samples, scale, store,
                                args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"{args.name}.csv", index=False, float_format="%.6g")
    text = markdown(table, accuracy, args, scale)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
