"""The exactness canary: every minimal-norm attack's L2 norms against the exact optimum of a small ReLU network.

Run by ``make bench-exact``::

    python benchmarks/bench_exact.py [--samples 50] [--hidden 10] [--epochs 10] [--out bench]
    python benchmarks/bench_exact.py --smoke --out /tmp/bench   # seconds: does it still run?

The network is ``784 -> H ReLUs -> 10`` (:func:`robustbench_win.attacks.exact_relu.relu_mlp`),
trained by the package's training loop on the embedded digits (``mnist5k``'s 4,000 training
digits, SGD batch 64, lr 0.05, no augmentation, seed 0). The digits are the runner's
class-balanced draw of the test split (seed 1234); the correctly classified ones are attacked.

**The exact optimum** of each digit is
:func:`robustbench_win.attacks.exact_relu.minimal_l2_distance`: one convex quadratic program
per activation pattern and other class (``2^H x 9``), each solved through its Lagrange dual
(scipy's L-BFGS-B, a Newton polish) with a duality-gap certificate, pruned by weak-duality
bounds. Every digit's distance is certified (lower and upper bound agree to 1e-8).

**Rows**, each compared per digit with the exact distance:

1. every minimal-norm attack the package registers, at its defaults (DeepFool and its
   projected variant, SuperDeepFool, FMN, DDN, ALMA and the foolbox and ART adapters);
2. each preset's minimal-norm attacks as configured (``fmn(25)`` in ``quick``, ``fmn(100)`` in
   ``mnist14`` and ``cifar10``), their per-digit minimum (that preset's best-known norm), and
   the minimum over every preset's attacks (the best-known norm);
3. the long-budget reference of ``bench_reference.py`` (``alma(500)``, ``fmn(400)``,
   ``ddn(400)``), its parts, its restarts (clean image, DeepFool's point, random point) and
   4x its budget; and ``bench_near_minimal.py``'s package reference (``alma(1000)``,
   ``ddn(1000)``, ``superdeepfool``).

Writes ``exact.csv`` and ``exact.md`` into ``--out`` (default ``bench/``) and prints the markdown.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from robustbench_win.attacks.exact_relu import ExactDistance, minimal_l2_distances, relu_mlp
from robustbench_win.attacks.families import minimal_norm_families
from robustbench_win.data.datasets import ImageData, load_dataset, stratified_subset
from robustbench_win.registry import ATTACKS
from robustbench_win.suite import load_suite
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import train

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
_reference = _sibling("bench_reference")
Setting = _near_minimal.Setting
run_attack = _near_minimal.run_attack
quantile = _near_minimal.quantile
cpu_model = _near_minimal.cpu_model
ATTACKED_IMAGES_SEED: int = _near_minimal.ATTACKED_IMAGES_SEED

BENCH_DIR = HERE.parent / "bench"
DATASET = "mnist5k"
SEED = 0  # training seed of the network
HIDDEN = 10  # 2^10 activation patterns x 9 other classes = 9,216 programs per digit before pruning
EPOCHS = 10
PRESETS = ("quick", "mnist14", "cifar10")  # whose minimal-norm attacks make the best-known norms
NEAR_MINIMAL_STEPS = 1000  # bench_near_minimal.py's package reference
WITHIN = (0.01, 0.001)  # "within 1 %" and "within 0.1 %" of the exact distance
# float32 logits against the solver's float64: an attack's point can be closer than the exact
# distance by a relative ~1e-7; a norm more than 1e-5 below it would be a solver or attack bug.
BELOW_SLACK = 1e-5
# --smoke: 4 hidden units, one epoch, 8 digits, the reference's budgets / 50.
SMOKE_HIDDEN, SMOKE_EPOCHS, SMOKE_SAMPLES, SMOKE_SCALE = 4, 1, 8, 0.02


def canary_network(data: ImageData, hidden: int, epochs: int) -> nn.Module:
    """The flatten-linear-ReLU-linear network, trained on ``data``'s training split (seed :data:`SEED`)."""
    torch.manual_seed(SEED)
    model = relu_mlp(int(np.prod(data.train_images.shape[1:])), hidden, data.num_classes)
    config = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(), augment=False, compile=False)
    train(model, data, config, seed=SEED, progress=False)
    return model.eval()


def registered_minimal_norm() -> list[Setting]:
    """Every registered attack of a minimal-norm family, at its defaults, in registration order."""
    return [Setting(name, name, {}) for name in ATTACKS.in_registration_order()
            if ATTACKS.create(name).family in minimal_norm_families()]


def preset_rows() -> list[tuple[str, tuple[Setting, ...]]]:
    """(label, members): each preset's minimal-norm attacks (their best-known norm), then all presets' together."""
    configs = {name: load_suite(name) for name in PRESETS}
    sets = _near_minimal.preset_sets(configs)
    rows = [(f"best-known ({presets})", members) for members, presets in sets]
    every = tuple({s.label: s for members, _ in sets for s in members}.values())
    return rows + [("best-known (every preset's attacks)", every)]


def ratio_metrics(norms: np.ndarray, exact: Sequence[ExactDistance]) -> dict[str, float]:
    """How far per-digit norms are from the exact distances (a failure is +inf)."""
    distance = np.array([e.distance for e in exact])
    bound = np.array([e.lower_bound for e in exact])
    ratio = norms / distance
    nan = math.nan
    return {
        "success rate": float(np.isfinite(norms).mean()) if norms.size else nan,
        "median / exact": float(np.median(ratio)) if ratio.size else nan,
        "p90 / exact": quantile(ratio, 0.9),
        "max / exact": float(ratio.max()) if ratio.size else nan,
        "within 1%": float((ratio <= 1 + WITHIN[0]).mean()) if ratio.size else nan,
        "within 0.1%": float((ratio <= 1 + WITHIN[1]).mean()) if ratio.size else nan,
        "below exact": int((norms < bound * (1 - BELOW_SLACK)).sum()),
    }


def canary_rows(model: nn.Module, x: Tensor, y: Tensor, exact: Sequence[ExactDistance],
                scale: float) -> list[dict[str, Any]]:
    """Every row: registered attacks, presets' settings and best-known norms, references."""
    runs: dict[str, dict[str, Any]] = {}

    def run(settings: Sequence[Setting]) -> np.ndarray:
        for setting in settings:
            if setting.label not in runs:
                runs[setting.label] = run_attack(setting.create(), model, x, y)
                print(f"{setting.label:32s} {runs[setting.label]['seconds']:7.1f} s", file=sys.stderr)
        return np.min(np.stack([runs[s.label]["norms"] for s in settings]), axis=0)

    def row(label: str, kind: str, settings: Sequence[Setting]) -> dict[str, Any]:
        norms = run(settings)
        return {"attack(s)": label, "kind": kind, **ratio_metrics(norms, exact),
                "passes/image": sum(runs[s.label]["forward/sample"] + runs[s.label]["backward/sample"] for s in settings),
                "seconds": sum(runs[s.label]["seconds"] for s in settings)}

    rows = [row(s.label, "registered", [s]) for s in registered_minimal_norm()]
    presets = preset_rows()
    configured = {s.label: s for _, members in presets for s in members if s.label not in runs}
    rows += [row(s.label, "preset setting", [s]) for s in configured.values() if s.label not in {r["attack(s)"] for r in rows}]
    rows += [row(label, "best-known", members) for label, members in presets]
    reference_runs, reference_sets = _reference.restart_runs("canary", model, x, y, scale)
    runs |= reference_runs
    standard = reference_sets["reference"]
    rows += [row(s.label, "reference part", [s]) for s in standard]
    rows += [row(label, "reference", settings) for label, settings in reference_sets.items()]
    rows.append(row("reference, every restart and 4x", "reference",
                    list({s.label: s for settings in reference_sets.values() for s in settings}.values())))
    near_minimal = _near_minimal.reference_settings(max(1, round(NEAR_MINIMAL_STEPS * scale)), advlib=False)
    rows.append(row(f"near-minimal reference ({' + '.join(s.label for s in near_minimal)})", "reference", near_minimal))
    return rows


def draw_digits(data: ImageData, model: nn.Module, samples: int) -> tuple[Tensor, Tensor, int]:
    """The correctly classified digits of the runner's draw, their labels, and how many were drawn."""
    indices = stratified_subset(data.test_labels, min(samples, len(data.test_labels)), ATTACKED_IMAGES_SEED)
    x, y = data.test_tensors(indices)
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    return x[correct], y[correct], len(indices)


def exact_summary(exact: Sequence[ExactDistance], seconds: float) -> dict[str, Any]:
    """What the exact solver did: digits, certified, seconds, programs solved of those enumerable."""
    solved = np.array([e.solved for e in exact])
    return {"digits": len(exact), "certified": sum(e.certified for e in exact), "seconds": seconds,
            "median distance": float(np.median([e.distance for e in exact])) if exact else math.nan,
            "largest relative gap": max(((e.distance - e.lower_bound) / e.distance for e in exact), default=math.nan),
            "programs per digit": exact[0].pairs if exact else 0,
            "solved median": float(np.median(solved)) if exact else math.nan,
            "solved max": int(solved.max()) if exact else 0}


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Shares as percentages, ratios to four decimals, passes and seconds rounded."""
    shown = table.copy()
    for column in ("success rate", "within 1%", "within 0.1%"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else f"{v:.0%}")
    for column in ("median / exact", "p90 / exact", "max / exact"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.4f}"))
    shown["passes/image"] = shown["passes/image"].map(lambda v: f"{v:.0f}" if v > 0 else "-")
    shown["seconds"] = shown["seconds"].map(lambda v: f"{v:.1f}")
    return shown


def markdown(table: pd.DataFrame, summary: dict[str, Any], accuracy: float, drawn: int, hidden: int, epochs: int,
             scale: float) -> str:
    """The report: the network, the exact solver's work, column definitions and the table."""
    setup = (
        f"Network: 784 -> {hidden} ReLUs -> 10, trained {epochs} epochs on the 4,000 training digits of `{DATASET}` "
        f"(seed {SEED}); test accuracy on the drawn digits {accuracy:.0%}. {drawn} held-out digits (the runner's "
        f"class-balanced draw, seed {ATTACKED_IMAGES_SEED}); the {summary['digits']} correctly classified ones are "
        f"attacked. CPU {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s).\n\n"
        f"Exact distances: one convex program per activation pattern and other class ({summary['programs per digit']} "
        f"per digit), solved through its dual with a duality-gap certificate "
        "(`robustbench_win.attacks.exact_relu`); after pruning by weak-duality bounds "
        f"{summary['solved median']:.0f} programs per digit were solved (median; at most {summary['solved max']}), "
        f"{summary['seconds']:.1f} s in all. Certified: {summary['certified']} of {summary['digits']} digits, largest "
        f"relative gap between the certified lower bound and the distance {summary['largest relative gap']:.1e}; "
        f"median exact distance {summary['median distance']:.4f}."
    )
    return (
        "# Exactness canary: minimal-norm attacks against the exact L2 optimum\n\n"
        f"{setup}\n\nCommand: `{' '.join(['python', 'benchmarks/bench_exact.py', *sys.argv[1:]])}`\n\n"
        f"Reference: {_reference.describe_reference(scale)}; restarts and 4x budget as in `bench_reference.py`.\n\n"
        "Columns: `attack(s)` one attack (its label: registry name, or `name(steps)`) or a row of several (per "
        "digit the smallest norm of its members); `kind`: a registered attack at its defaults, a preset's setting, "
        "a preset's best-known norm, or a reference; `success rate` the share of attacked digits fooled; "
        "`median / exact`, `p90 / exact` and `max / exact` the median, 90th percentile and maximum over the digits "
        "of the verified norm over the exact distance (a failure is inf); `within 1%` and `within 0.1%` the share "
        "of digits with norm <= 1.01 (1.001) x exact; `below exact` the digits whose norm is below the certified "
        f"lower bound by more than a relative {BELOW_SLACK:g} (float32 rounding; must be 0); `passes/image` forward "
        "plus backward passes per digit (summed over a row's members; `-` where the backend calls the model outside "
        "the counting hook, as ART's estimator does); `seconds` their wall time.\n\n"
        f"{format_table(table).to_markdown(index=False)}\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50, help="held-out digits drawn (default 50)")
    parser.add_argument("--hidden", type=int, default=HIDDEN, help=f"hidden ReLUs (default {HIDDEN}, at most 16)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: 4 hidden units, one epoch, 8 digits, reference budgets / 50; measures nothing")
    args = parser.parse_args(argv)
    scale = 1.0
    if args.smoke:
        args.hidden, args.epochs, args.samples, scale = SMOKE_HIDDEN, SMOKE_EPOCHS, SMOKE_SAMPLES, SMOKE_SCALE
    if args.samples < 1 or args.threads < 1 or not 1 <= args.hidden <= 16 or args.epochs < 1:
        parser.error("--samples, --threads and --epochs must be positive and --hidden between 1 and 16")
    torch.set_num_threads(args.threads)

    data = load_dataset(DATASET)
    model = canary_network(data, args.hidden, args.epochs)
    x, y, drawn = draw_digits(data, model, args.samples)
    started = time.perf_counter()
    exact = minimal_l2_distances(model, x, y)
    summary = exact_summary(exact, time.perf_counter() - started)
    table = pd.DataFrame(canary_rows(model, x, y, exact, scale))

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "exact.csv", index=False, float_format="%.6g")
    text = markdown(table, summary, len(x) / drawn, drawn, args.hidden, args.epochs, scale)
    (args.out / "exact.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
