"""Minimal-norm L2 attacks side by side on the quick preset's models: norms, passes and seconds.

Run by ``make bench-minimal-norm``::

    python benchmarks/bench_minimal_norm.py [--models 3:none,11:hamming] [--samples 100] [--quick]
    python benchmarks/bench_minimal_norm.py --smoke --out /tmp/bench   # seconds: does it still run?

The models are the quick preset's (``robustbench_win/suites/quick.toml``: paper CNN, depth 3,
width 12, 6 epochs on the embedded MNIST digits), trained once through the checkpoint store
(``~/.cache/robustbench-win/checkpoints``, shared with ``make run``), seed 0. Every attack
runs on the same held-out digits, the ones the runner attacks (a class-balanced draw with
seed 1234), in one process, one after the other, so the seconds compare.

Two tables, printed and written to ``bench/minimal_norm.md`` (with
``bench/minimal_norm.csv`` and ``bench/minimal_norm_convergence.csv``):

1. Per model and attack: success rate; median L2 norm with failures counted as +inf;
   ``median / best``, the median over attacked digits of the norm over the smallest verified
   norm any attack of this table found for that digit (inf for a failure); forward and
   backward passes per attacked digit (``Attack.last_call_stats``); seconds; and
   ``x foolbox``, the seconds over those of foolbox's implementation of the same algorithm.
   ``fmn-paper`` is our FMN with the paper's settings (clean start, no overshoot, no box-aware
   steps, every sample runs all steps), as the authors' code runs it; adv-lib's FMN differs
   from it in one point (its L2 step rescales onto the sphere of radius epsilon, not into the
   ball). ``ddn-clean-start`` is our DDN started from the clean image, as the paper and
   adv-lib do. adv-lib rows appear when ``adv_lib`` is importable.
2. Convergence: median norm of ``fmn`` and ``ddn`` against their step budget (patience half
   the budget), and per digit against a run of the largest budget without early exit, to
   justify the defaults and a cheaper setting for the quick preset.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]

from robustbench_win.attacks import Attack, BatchOutput, SampleResult
from robustbench_win.attacks.result import ITERATIONS_NOT_REPORTED
from robustbench_win.data.prepare import prepare_data
from robustbench_win.train.checkpoints import CheckpointStore, ModelSpec
from robustbench_win.train.obtain import obtain_model
from robustbench_win.data.datasets import ImageData, stratified_subset
from robustbench_win.registry import ATTACKS
from robustbench_win.suite import SuiteConfig, load_suite

BENCH_DIR = ROOT / "bench"
SUITE = "quick"
SEED = 0  # training seed of the benchmarked models
ATTACKED_IMAGES_SEED = 1234  # the runner's draw of attacked test images
ATTACK_BATCH = 256  # the runner's attack batch
# name in the table -> (registry name, keyword arguments)
ATTACKS_RUN: dict[str, tuple[str, dict[str, Any]]] = {
    "deepfool": ("deepfool", {}),
    "deepfool-projected": ("deepfool-projected", {}),
    "deepfool-foolbox": ("deepfool-foolbox", {}),
    "fmn": ("fmn", {}),
    "fmn-paper": ("fmn", {"init": "none", "overshoot": 0.0, "box_aware": False, "patience": 0}),
    "fmn-foolbox": ("fmn-foolbox", {}),
    "ddn": ("ddn", {}),
    "ddn-clean-start": ("ddn", {"init": "none"}),
    "ddn-foolbox": ("ddn-foolbox", {}),
}
FOOLBOX_PEER = {"deepfool": "deepfool-foolbox", "deepfool-projected": "deepfool-foolbox", "fmn": "fmn-foolbox",
                "fmn-paper": "fmn-foolbox", "fmn-advlib": "fmn-foolbox", "ddn": "ddn-foolbox",
                "ddn-clean-start": "ddn-foolbox", "ddn-advlib": "ddn-foolbox"}
CONVERGENCE_STEPS = (10, 25, 50, 100, 200, 500)
# --smoke: one model trained for two epochs on 1,000 digits (checkpoints under --out), 10 digits,
# one step budget: checks that the benchmark runs, measures nothing.
SMOKE_OVERRIDES = ["train_size=1000", "train.epochs=2", "train.milestones=[]"]


class AdvLibAttack(Attack):
    """An adv-lib attack function (``adv_lib.attacks``) run under the common Attack API.

    Args:
        label: Name shown in the table.
        function: ``function(model, inputs, labels, **kwargs) -> adversarial inputs``.
        kwargs: Its hyper-parameters.
    """

    name: ClassVar[str] = "advlib"
    family: ClassVar[str] = "deepfool"

    def __init__(self, label: str, function: Callable[..., Tensor], **kwargs: Any) -> None:
        self.label, self.function, self.kwargs = label, function, kwargs

    def params(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def describe(self) -> str:
        """One sentence: which adv-lib function, with its hyper-parameters."""
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.kwargs.items())
        return f"adv-lib's {self.function.__name__}({arguments})."

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        with torch.enable_grad():
            x_adv = self.function(model, x, y, **self.kwargs)
        iterations = torch.full((len(x),), ITERATIONS_NOT_REPORTED, dtype=torch.long)
        return BatchOutput(x_adv=x_adv.detach(), iterations=iterations)


def advlib_attacks(steps: dict[str, int]) -> dict[str, Attack]:
    """adv-lib's FMN (L2) and DDN (no quantisation) at our step budgets; empty if not installed."""
    try:
        from adv_lib.attacks import ddn, fmn
    except ImportError:
        return {}
    return {"fmn-advlib": AdvLibAttack("fmn-advlib", fmn, norm=2, steps=steps["fmn"]),
            "ddn-advlib": AdvLibAttack("ddn-advlib", ddn, steps=steps["ddn"], levels=None)}


def quick_model(config: SuiteConfig, data: ImageData, kernel_size: int, window: str, store: CheckpointStore) -> nn.Module:
    """The quick preset's model of one configuration, from the checkpoint store (trained if absent)."""
    spec = ModelSpec(config.model, {"kernel_size": kernel_size, "window": window, **config.model_args},
                     config.dataset, config.train, seed=SEED, train_size=config.train_size)
    return obtain_model(spec, data, store, progress=False, evaluate_test=False).model.eval()


def norms_with_failures(results: list[SampleResult]) -> np.ndarray:
    """Per attacked sample: the verified L2 norm, +inf for a failure."""
    return np.array([r.l2 if r.success else np.inf for r in results if r.attacked])


def run_attack(attack: Attack, model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Any]:
    """Attack once; the per-sample norms and the call's cost per attacked sample."""
    results = attack(model, x, y, batch_size=ATTACK_BATCH)
    stats = attack.last_call_stats
    assert stats is not None
    return {"norms": norms_with_failures(results), "attacked": stats.n_attacked, "seconds": stats.seconds,
            "forward/sample": stats.forward_passes / max(stats.n_attacked, 1),
            "backward/sample": stats.backward_passes / max(stats.n_attacked, 1)}


def attack_rows(model_name: str, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per attack, with its ratio to the per-sample best and to foolbox."""
    best = np.min(np.stack([run["norms"] for run in runs.values()]), axis=0)
    rows = []
    for name, run in runs.items():
        norms = run["norms"]
        peer = runs.get(FOOLBOX_PEER.get(name, name))
        rows.append({
            "model": model_name, "attack": name, "attacked": run["attacked"],
            "success rate": float(np.isfinite(norms).mean()), "median L2": float(np.median(norms)),
            "median / best": float(np.median(norms / best)),
            "forward/sample": run["forward/sample"], "backward/sample": run["backward/sample"],
            "seconds": run["seconds"], "x foolbox": run["seconds"] / peer["seconds"] if peer else np.nan,
        })
    return rows


def convergence_rows(
    model_name: str, model: nn.Module, x: Tensor, y: Tensor, steps: Sequence[int]
) -> list[dict[str, Any]]:
    """fmn and ddn at each step budget (patience: half of it) against a reference run.

    The reference is the largest budget with no early exit. Per digit, the norm is divided by
    the reference's; the table shows the median and the 90th percentile of that ratio.
    """
    rows = []
    for attack_name in ("fmn", "ddn"):
        settings = [(budget, budget // 2) for budget in steps] + [(max(steps), 0)]
        runs = {setting: run_attack(ATTACKS.create(attack_name, steps=setting[0], patience=setting[1]), model, x, y)
                for setting in settings}
        reference = runs[(max(steps), 0)]["norms"]
        for (budget, patience), run in runs.items():
            ratio = run["norms"] / reference
            rows.append({"model": model_name, "attack": attack_name, "steps": budget, "patience": patience,
                         "success rate": float(np.isfinite(run["norms"]).mean()),
                         "median L2": float(np.median(run["norms"])),
                         "median / reference": float(np.median(ratio)), "p90 / reference": float(np.quantile(ratio, 0.9)),
                         "forward/sample": run["forward/sample"], "seconds": run["seconds"]})
            print(f"{model_name:12s} {attack_name:4s} {budget:4d} steps {run['seconds']:6.1f} s", file=sys.stderr)
    return rows


def benchmark(
    models: list[tuple[int, str]], samples: int, steps: Sequence[int], overrides: list[str], store: CheckpointStore,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], bool]:
    """Both tables, the models' accuracy on the attacked digits, and whether adv-lib ran."""
    config = load_suite(SUITE, overrides)
    data = prepare_data(config.dataset, train_size=config.train_size, test_size=config.test_size,
                        data_dir=None, download=False)
    indices = stratified_subset(data.test_labels, min(samples, len(data.test_labels)), ATTACKED_IMAGES_SEED)
    x, y = data.test_tensors(indices)
    attacks = {name: ATTACKS.create(registered, **kwargs) for name, (registered, kwargs) in ATTACKS_RUN.items()}
    extra = advlib_attacks({"fmn": attacks["fmn"].params()["steps"], "ddn": attacks["ddn"].params()["steps"]})
    attacks |= extra
    rows, convergence, accuracy = [], [], {}
    for kernel_size, window in models:
        model_name = f"k{kernel_size}-{window}"
        model = quick_model(config, data, kernel_size, window, store)
        with torch.no_grad():
            accuracy[model_name] = float((model(x).argmax(1) == y).float().mean())
        runs = {}
        for name, attack in attacks.items():
            runs[name] = run_attack(attack, model, x, y)
            print(f"{model_name:12s} {name:20s} {runs[name]['seconds']:6.1f} s", file=sys.stderr)
        rows += attack_rows(model_name, runs)
        convergence += convergence_rows(model_name, model, x, y, steps)
    return pd.DataFrame(rows), pd.DataFrame(convergence), accuracy, bool(extra)


def _format(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for column in shown.columns:
        if column in ("success rate",):
            shown[column] = shown[column].map(lambda v: f"{v:.1%}")
        elif column in ("median L2", "median / best", "median / reference", "p90 / reference", "x foolbox"):
            shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.3f}"))
        elif column in ("forward/sample", "backward/sample", "seconds"):
            shown[column] = shown[column].map(lambda v: f"{v:.1f}")
    return shown


def markdown(attacks: pd.DataFrame, convergence: pd.DataFrame, accuracy: dict[str, float], advlib: bool,
             args: argparse.Namespace) -> str:
    setup = (
        f"Models: the `{SUITE}` preset's (seed {SEED}), test accuracy on the attacked digits "
        f"{', '.join(f'{k} {v:.0%}' for k, v in accuracy.items())}. First {args.samples} of the runner's "
        f"class-balanced draw of held-out digits. Attack batch {ATTACK_BATCH}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}; "
        f"load average at start {args.load:.2f}. "
        + ("adv-lib rows: adv_lib as installed." if advlib else "adv-lib is not installed: its rows are skipped.")
    )
    return (
        f"# Minimal-norm L2 attacks on the {SUITE} preset's models\n\n{setup}\n\n"
        f"Command: `python benchmarks/bench_minimal_norm.py {' '.join(sys.argv[1:])}`\n\n"
        "Median L2 counts a failure as +inf; `median / best` is the median over digits of the norm "
        "over the smallest verified norm any attack here found for that digit; passes are per "
        "attacked digit; `x foolbox` is seconds over those of foolbox's implementation of the same "
        "algorithm in the same run.\n\n"
        f"{_format(attacks).to_markdown(index=False)}\n\n"
        "## Median norm against steps\n\n"
        "Each budget runs with patience = half of it (the defaults' rule); the reference is the "
        "largest budget with every digit running all steps. `median / reference` and "
        "`p90 / reference` are the median and 90th percentile over digits of the norm over the "
        "reference's norm for that digit.\n\n"
        f"{_format(convergence).to_markdown(index=False)}\n"
    )


def parse_models(text: str) -> list[tuple[int, str]]:
    """``"3:none,11:hamming"`` -> ``[(3, "none"), (11, "hamming")]``."""
    models = []
    for item in text.split(","):
        kernel_size, _, window = item.partition(":")
        models.append((int(kernel_size), window or "none"))
    return models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="3:none,11:hamming", help="kernel:window list (default 3:none,11:hamming)")
    parser.add_argument("--samples", type=int, default=100, help="held-out digits attacked (default 100)")
    parser.add_argument("--quick", action="store_true", help="32 digits, step budgets up to 100")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one tiny model (checkpoints under --out), 10 digits, 10 steps; measures nothing")
    args = parser.parse_args(argv)
    steps = CONVERGENCE_STEPS
    overrides, store = [], CheckpointStore()
    if args.quick:
        args.samples, steps = min(args.samples, 32), tuple(s for s in CONVERGENCE_STEPS if s <= 100)
    if args.smoke:
        args.models, args.samples, steps = "3:none", 10, (10,)
        overrides, store = SMOKE_OVERRIDES, CheckpointStore(args.out / "checkpoints")
    if args.samples < 1 or args.threads < 1:
        parser.error("--samples and --threads must be positive")
    torch.set_num_threads(args.threads)
    args.load = os.getloadavg()[0]

    attacks, convergence, accuracy, advlib = benchmark(parse_models(args.models), args.samples, steps, overrides, store)
    args.out.mkdir(parents=True, exist_ok=True)
    attacks.to_csv(args.out / "minimal_norm.csv", index=False, float_format="%.6g")
    convergence.to_csv(args.out / "minimal_norm_convergence.csv", index=False, float_format="%.6g")
    text = markdown(attacks, convergence, accuracy, advlib, args)
    (args.out / "minimal_norm.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
