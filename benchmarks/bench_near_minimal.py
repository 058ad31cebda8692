"""How close each preset's best-known L2 norms come to a long-budget reference, and optimality against cost.

Run by ``make bench-near-minimal``::

    python benchmarks/bench_near_minimal.py [--models 3:none,3:hamming,11:none,11:hamming] [--samples 100]
        [--reference-steps 1000] [--suite quick] [--set KEY=VALUE ...] [--no-advlib] [--out bench]
    python benchmarks/bench_near_minimal.py --suite cifar10 --set dataset=imagefolder:/work/shared/datasets/cifar10-jpeg
    python benchmarks/bench_near_minimal.py --smoke --out /tmp/bench   # seconds: does it still run?

The models are a preset's (default ``quick``: paper CNN, depth 3, width 12, 6 epochs on the
embedded MNIST digits; ``--suite`` and ``--set`` choose another preset and override its keys,
as ``robustbench-win run`` does), seed 0, trained once through the checkpoint store
(``~/.cache/robustbench-win/checkpoints``, shared with ``make run``). Every attack runs on the
same held-out images (the runner's class-balanced draw, seed 1234), in one process, one after
the other, so the seconds compare.

1. **Reference** per image: the smallest verified norm over adv-lib's ``alma(num_steps=1000)``,
   ``ddn(steps=1000, levels=None)``, ``fmn(norm=2, steps=1000)`` and ``sdf()``, each run through
   the package's Attack base class (so every result is verified; a failure is +inf). Without
   adv-lib (or with ``--no-advlib``) the package's own ``alma`` (1000 steps), ``ddn`` (1000
   steps, patience 0) and ``superdeepfool`` make the reference instead.
2. **Single attacks** at several budgets: ``deepfool``, ``superdeepfool``, ``fmn`` and ``ddn`` at
   10/25/50/100/200 steps (patience half the budget), ``alma`` at 100/300/500/1000 steps
   (patience 0, clean start).
3. **Combinations**, the best-known norms of a preset: the per-image minimum over its
   minimal-norm attacks (read from the ``quick``, ``mnist14`` and ``cifar10`` presets, and the
   chosen suite), alone and with ``alma`` (from the clean image, and from DeepFool's boundary
   point), ``ddn`` or ``superdeepfool`` added.

Each row compares its per-image norms with the reference's: median and 90th percentile of the
ratio, the share within 1 %, and AttackBench optimality
(``robustbench_win.analysis.norms.optimality``). Writes ``near_minimal.csv``,
``near_minimal.md`` and ``figures/near_minimal_optimality.png`` (optimality against forward +
backward passes per image) into ``--out`` (default ``bench/``) and prints the markdown.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from robustbench_win.analysis.norms import curve_area, optimality, robust_accuracy
from robustbench_win.attacks.families import minimal_norm_families
from robustbench_win.attacks import Attack
from robustbench_win.data.datasets import stratified_subset
from robustbench_win.data.prepare import prepare_data
from robustbench_win.registry import ATTACKS
from robustbench_win.report.figures import save_png
from robustbench_win.suite import SuiteConfig, load_suite
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


_minimal_norm = _sibling("bench_minimal_norm")
AdvLibAttack = _minimal_norm.AdvLibAttack
quick_model = _minimal_norm.quick_model
run_attack = _minimal_norm.run_attack
parse_models = _minimal_norm.parse_models
ATTACKED_IMAGES_SEED: int = _minimal_norm.ATTACKED_IMAGES_SEED
ATTACK_BATCH: int = _minimal_norm.ATTACK_BATCH
SEED: int = _minimal_norm.SEED
cpu_model = _sibling("bench_quick").cpu_model

BENCH_DIR = HERE.parent / "bench"
DEFAULT_SUITE = "quick"
DEFAULT_MODELS = "3:none,3:hamming,11:none,11:hamming"
PRESETS = ("quick", "mnist14", "cifar10")  # whose minimal-norm attacks make the combinations
REFERENCE_STEPS = 1000
STEP_BUDGETS = (10, 25, 50, 100, 200)  # fmn and ddn, patience = steps // 2
ALMA_BUDGETS = (100, 300, 500, 1000)  # patience 0, clean start
COMBINED_DDN_STEPS = 100  # the ddn added to the fmn(100) presets' set
WITHIN = 0.01  # "within 1 %": norm <= 1.01 x reference
# --smoke: one model trained for two epochs on 1,000 digits (checkpoints under --out), 8 digits,
# tiny budgets: checks that the benchmark runs, measures nothing.
SMOKE_OVERRIDES = ["train_size=1000", "train.epochs=2", "train.milestones=[]"]
SMOKE_STEP_BUDGETS = (5, 10)
SMOKE_ALMA_BUDGETS = (5, 10)
SMOKE_REFERENCE_STEPS = 10
SMOKE_SAMPLES = 8


class Setting(NamedTuple):
    """One attack configuration of the benchmark.

    Attributes:
        label: Name in the table, e.g. ``fmn(25)``.
        name: Registry name (or adv-lib function name for an adv-lib attack).
        kwargs: Its hyper-parameters.
        advlib: Run adv-lib's function through :class:`AdvLibAttack` instead of the registry.
    """

    label: str
    name: str
    kwargs: dict[str, Any]
    advlib: bool = False

    def create(self) -> Attack:
        """A fresh attack object of this setting."""
        if not self.advlib:
            return ATTACKS.create(self.name, **self.kwargs)
        import adv_lib.attacks

        return AdvLibAttack(self.label, getattr(adv_lib.attacks, self.name), **self.kwargs)


def budget_kwargs(name: str, steps: int) -> dict[str, Any]:
    """The benchmark's settings of one step budget: patience half of it (``alma``: 0, clean start)."""
    if name == "alma":
        return {"steps": steps, "patience": 0, "init": "none"}
    return {"steps": steps, "patience": steps // 2}


def setting_of(name: str, params: dict[str, Any]) -> Setting:
    """A registry attack as a setting, labelled ``name(steps)`` when it follows :func:`budget_kwargs`."""
    if not params:
        return Setting(name, name, {})
    steps = params.get("steps")
    if isinstance(steps, int) and params == budget_kwargs(name, steps):
        return Setting(f"{name}({steps})", name, dict(params))
    arguments = ", ".join(f"{key}={value!r}" for key, value in params.items())
    return Setting(f"{name}({arguments})", name, dict(params))


def advlib_available() -> bool:
    """Whether ``adv_lib`` can be imported."""
    return importlib.util.find_spec("adv_lib") is not None


def reference_settings(steps: int, advlib: bool) -> list[Setting]:
    """The long-budget attacks whose per-image minimum is the reference."""
    if advlib:
        return [Setting(f"alma-advlib({steps})", "alma", {"num_steps": steps}, advlib=True),
                Setting(f"ddn-advlib({steps})", "ddn", {"steps": steps, "levels": None}, advlib=True),
                Setting(f"fmn-advlib({steps})", "fmn", {"norm": 2, "steps": steps}, advlib=True),
                Setting("sdf-advlib", "sdf", {}, advlib=True)]
    # alma's defaults are budget_kwargs' (patience 0, clean start): the run of the same label is shared.
    return [setting_of("alma", budget_kwargs("alma", steps)), setting_of("ddn", {"steps": steps, "patience": 0}),
            setting_of("superdeepfool", {})]


def single_settings(step_budgets: Sequence[int], alma_budgets: Sequence[int]) -> list[Setting]:
    """The single attacks of the optimality-against-cost curve, cheapest budget first per family."""
    settings = [setting_of("deepfool", {}), setting_of("superdeepfool", {})]
    for name in ("fmn", "ddn"):
        settings += [setting_of(name, budget_kwargs(name, steps)) for steps in step_budgets]
    return settings + [setting_of("alma", budget_kwargs("alma", steps)) for steps in alma_budgets]


def preset_sets(configs: dict[str, SuiteConfig]) -> list[tuple[tuple[Setting, ...], str]]:
    """Each distinct set of minimal-norm attacks (a preset's best-known norms) and the presets using it."""
    sets: dict[tuple[str, ...], tuple[tuple[Setting, ...], list[str]]] = {}
    for preset, config in configs.items():
        members = tuple(setting_of(spec.name, dict(spec.params)) for spec in config.attacks
                        if ATTACKS.create(spec.name, **spec.params).family in minimal_norm_families())
        if members:
            sets.setdefault(tuple(member.label for member in members), (members, []))[1].append(preset)
    return [(members, ", ".join(presets)) for members, presets in sets.values()]


def combinations(
    configs: dict[str, SuiteConfig], alma_budgets: Sequence[int], ddn_steps: int
) -> list[tuple[tuple[Setting, ...], str]]:
    """(members, presets) of every combination row.

    Each preset's set alone (in the order of ``configs``); the first set (the ``quick``
    preset's) plus ``alma`` at each budget but the smallest, plus ``alma`` started from
    projected DeepFool's boundary point at the two smallest budgets (does a warm start make a
    short ALMA enough?), and plus ``superdeepfool``; every other set plus ``ddn(ddn_steps)``.
    """
    sets = preset_sets(configs)
    if not sets:
        return []
    first = sets[0][0]
    ddn = setting_of("ddn", budget_kwargs("ddn", ddn_steps))
    return [*sets,
            *[((*first, setting_of("alma", budget_kwargs("alma", steps))), "") for steps in alma_budgets[1:]],
            *[((*first, setting_of("alma", {**budget_kwargs("alma", steps), "init": "deepfool"})), "")
              for steps in alma_budgets[:2]],
            *[((*members, ddn), "") for members, _ in sets[1:] if ddn.label not in {m.label for m in members}],
            ((*first, setting_of("superdeepfool", {})), "")]


def near_minimal_metrics(norms: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How close per-image norms come to the reference's (both over the same attacked images).

    Ratios are taken over the images the reference fooled (a failure is +inf, never within
    1 %); optimality over every attacked image (:func:`optimality_against`).
    """
    fooled = np.isfinite(reference)
    ratio = norms[fooled] / reference[fooled]
    nan = math.nan
    return {
        "success rate": float(np.isfinite(norms).mean()) if norms.size else nan,
        "median / reference": float(np.median(ratio)) if ratio.size else nan,
        "p90 / reference": quantile(ratio, 0.9),
        "within 1%": float((ratio <= 1 + WITHIN).mean()) if ratio.size else nan,
        "optimality": optimality_against(norms, reference),
        "below reference": float((norms < reference).mean()) if norms.size else nan,
    }


def quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile`` that reads +inf where it falls between two infinite values (NaN if empty)."""
    if values.size == 0:
        return math.nan
    with np.errstate(invalid="ignore"):
        value = float(np.quantile(values, q))
    return math.inf if math.isnan(value) and np.isinf(values).any() else value


def optimality_against(norms: np.ndarray, reference: np.ndarray) -> float:
    """AttackBench optimality ``1 - (A - A*) / (clean_acc * d_max - A*)`` with the reference as ``A*``.

    The package's :func:`~robustbench_win.analysis.norms.optimality`, whose best-known norms are
    a minimum over attacks that include this one. Where an attack beats the reference on some
    image that function refuses; the same formula is then evaluated with the package's
    ``curve_area`` and ``robust_accuracy`` and can exceed 1. NaN where undefined (no finite
    reference norm).
    """
    if not np.any(norms < reference):
        return optimality(norms, reference).value
    found = reference[np.isfinite(reference) & (reference > 0)]
    if found.size == 0:
        return math.nan
    d_max = float(found.max())
    best_area, failure_area = curve_area(reference, d_max), float(robust_accuracy(reference, 0.0)) * d_max
    if failure_area <= best_area:
        return math.nan
    return 1.0 - (curve_area(norms, d_max) - best_area) / (failure_area - best_area)


def passes_per_image(run: dict[str, Any]) -> float:
    """Forward plus backward passes per attacked image of one attack call."""
    return float(run["forward/sample"] + run["backward/sample"])


def model_rows(
    model_name: str, model: nn.Module, x: Tensor, y: Tensor, reference: Sequence[Setting],
    singles: Sequence[Setting], combos: Sequence[tuple[tuple[Setting, ...], str]],
) -> list[dict[str, Any]]:
    """Every row of one model: reference parts and reference, single attacks, combinations.

    Each distinct setting runs once (by label); a combination sums its members' passes and
    seconds and takes the per-image minimum of their norms.
    """
    runs: dict[str, dict[str, Any]] = {}

    def run(setting: Setting) -> dict[str, Any]:
        if setting.label not in runs:
            runs[setting.label] = run_attack(setting.create(), model, x, y)
            print(f"{model_name:12s} {setting.label:24s} {runs[setting.label]['seconds']:7.1f} s", file=sys.stderr)
        return runs[setting.label]

    def row(label: str, kind: str, members: Iterable[Setting], preset: str = "", family: str = "",
            steps: float = math.nan) -> dict[str, Any]:
        parts = [run(member) for member in members]
        norms = np.min(np.stack([part["norms"] for part in parts]), axis=0)
        return {"model": model_name, "attack(s)": label, "kind": kind, "preset": preset,
                "passes/image": sum(passes_per_image(part) for part in parts),
                "seconds": sum(part["seconds"] for part in parts),
                **near_minimal_metrics(norms, best), "family": family, "steps": steps}

    best = np.min(np.stack([run(setting)["norms"] for setting in reference]), axis=0)
    rows = [row(setting.label, "reference part", [setting]) for setting in reference]
    rows.append(row("reference (min of the above)", "reference", reference))
    rows += [row(setting.label, "single", [setting], family=setting.name,
                 steps=setting.kwargs.get("steps", math.nan)) for setting in singles]
    rows += [row(" + ".join(member.label for member in members), "combination", members, preset=preset)
             for members, preset in combos]
    return rows


def benchmark(
    suite: str, overrides: list[str], models: list[tuple[int, str]], samples: int, reference: Sequence[Setting],
    singles: Sequence[Setting], combos: Sequence[tuple[tuple[Setting, ...], str]], store: CheckpointStore,
    data_dir: Path | None,
) -> tuple[pd.DataFrame, dict[str, float], int]:
    """The table of every model, the models' accuracy on the attacked images, and how many were drawn."""
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
        rows += model_rows(model_name, model, x, y, reference, singles, combos)
    return pd.DataFrame(rows), accuracy, len(indices)


FAMILY_STYLE = {"fmn": ("tab:blue", "o"), "ddn": ("tab:orange", "s"), "alma": ("tab:green", "^"),
                "deepfool": ("tab:red", "D"), "superdeepfool": ("tab:purple", "v")}
COMBINATION_MARKERS = ("X", "P", "*", "h", "p", "d", "<", ">", "8", "H")


def optimality_figure(table: pd.DataFrame, title: str) -> Figure:
    """Optimality against forward + backward passes per image (log scale), one panel per model (two a row).

    A line per attack family over its budgets (single points for DeepFool and SuperDeepFool),
    the combinations as black markers of their own shape, the reference as a grey star.
    """
    models = list(dict.fromkeys(table["model"]))
    columns = min(2, len(models))
    grid_rows = math.ceil(len(models) / columns)
    fig = Figure(figsize=(4.6 * columns + 1.0, 3.8 * grid_rows + 1.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(grid_rows, columns, squeeze=False, sharey=True).flat)
    for spare in axes[len(models):]:
        spare.set_visible(False)
    combos = list(dict.fromkeys(table.loc[table["kind"] == "combination", "attack(s)"]))
    markers = {label: COMBINATION_MARKERS[i % len(COMBINATION_MARKERS)] for i, label in enumerate(combos)}
    for ax, model in zip(axes, models):
        rows = table[table["model"] == model]
        singles = rows[rows["kind"] == "single"]
        for family, (colour, marker) in FAMILY_STYLE.items():
            line = singles[singles["family"] == family].sort_values("passes/image")
            if len(line):
                ax.plot(line["passes/image"], line["optimality"], marker=marker, color=colour, label=family)
        for _, combo in rows[rows["kind"] == "combination"].iterrows():
            ax.plot(combo["passes/image"], combo["optimality"], linestyle="none", marker=markers[combo["attack(s)"]],
                    color="black", markersize=8, label=combo["attack(s)"])
        for _, ref in rows[rows["kind"] == "reference"].iterrows():
            ax.plot(ref["passes/image"], ref["optimality"], linestyle="none", marker="*", color="grey",
                    markersize=12, label="reference")
        ax.set_xscale("log")
        ax.set_title(model)
        ax.set_xlabel("forward + backward passes per image")
        ax.set_ylabel("optimality against the reference")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=columns + 1, fontsize="small")
    fig.suptitle(textwrap.fill(title, 45 * columns, break_long_words=False))
    return fig


def _format(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.drop(columns=["family", "steps"]).copy()
    for column in ("success rate", "within 1%", "below reference"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else f"{v:.0%}")
    for column in ("median / reference", "p90 / reference", "optimality"):
        shown[column] = shown[column].map(lambda v: "-" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.4f}"))
    shown["passes/image"] = shown["passes/image"].map(lambda v: "-" if np.isnan(v) else f"{v:.0f}")
    shown["seconds"] = shown["seconds"].map(lambda v: f"{v:.1f}")
    return shown


def markdown(table: pd.DataFrame, accuracy: dict[str, float], attacked: int, advlib: bool, advlib_note: str,
             args: argparse.Namespace) -> str:
    """The report: set-up, column definitions and the table."""
    reference = (f"adv-lib's alma(num_steps={args.reference_steps}), ddn(steps={args.reference_steps}, levels=None), "
                 f"fmn(norm=2, steps={args.reference_steps}) and sdf(), run through the package's Attack base class "
                 "(every result verified)" if advlib else
                 f"the package's alma(steps={args.reference_steps}), ddn(steps={args.reference_steps}, patience=0) and "
                 f"superdeepfool ({advlib_note})")
    setup = (
        f"Models: the `{args.suite}` suite's (seed {SEED}"
        + (f"; overrides {', '.join(f'`{o}`' for o in args.set)}" if args.set else "")
        + f"), accuracy on the attacked images {', '.join(f'{k} {v:.0%}' for k, v in accuracy.items())}. "
        f"{attacked} held-out images (the runner's class-balanced draw, seed {ATTACKED_IMAGES_SEED}); the correctly "
        f"classified ones are attacked. Attack batch {ATTACK_BATCH}; CPU {cpu_model()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s). adv-lib: "
        + ("used for the reference." if advlib else f"not used ({advlib_note}).")
    )
    return (
        f"# Near-minimal norms: presets' best-known L2 norms against a long-budget reference\n\n{setup}\n\n"
        f"Command: `python benchmarks/bench_near_minimal.py {' '.join(sys.argv[1:])}`\n\n"
        f"Reference per image: the smallest verified L2 norm over {reference}; a failure is +inf.\n\n"
        "Columns: `attack(s)` is one attack or a combination (`a + b`: per image the smallest norm of its "
        "members, which is what a preset's best-known norm is); `kind` says whether the row is part of the "
        "reference, the reference itself, a single attack or a combination; `preset` names the presets whose "
        "minimal-norm attacks the combination is; `passes/image` is forward plus backward passes per attacked "
        "image (`Attack.last_call_stats`, summed over a combination's members); `seconds` is the wall time of "
        "all attacked images (summed likewise); `success rate` is the share of attacked images fooled; "
        "`median / reference` and `p90 / reference` are the median and 90th percentile, over the attacked images "
        "the reference fooled, of the norm over the reference's norm (a failure is inf); `within 1%` is the share "
        "of those images with norm <= 1.01 x reference (a failure never is); `optimality` is AttackBench's "
        "1 - (A - A*) / (clean_acc x d_max - A*), with A the area under the robust-accuracy curve of the "
        "attacked images (share whose norm exceeds eps) over [0, d_max], A* the same for the reference and "
        "d_max the largest finite reference norm (1: as good as the reference, 0: never succeeds, above 1 "
        "where the row beats the reference); `below reference` is the share of attacked images on which the "
        "row's norm is smaller than the reference's.\n\n"
        f"Steps: `fmn(n)` and `ddn(n)` run n steps with patience n // 2; `alma(n)` runs n steps with patience 0 "
        "from the clean image (`init='deepfool'`: from projected DeepFool's boundary point); `deepfool` and "
        "`superdeepfool` run with their defaults.\n\n"
        f"![optimality against cost](figures/near_minimal_optimality.png)\n\n"
        f"{_format(table).to_markdown(index=False)}\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=DEFAULT_SUITE, help=f"preset name or TOML path (default {DEFAULT_SUITE})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a suite key, as `robustbench-win run --set` (repeatable)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the data set's files are (default: its own)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"kernel:window list (default {DEFAULT_MODELS})")
    parser.add_argument("--samples", type=int, default=100, help="held-out images drawn (default 100)")
    parser.add_argument("--reference-steps", type=int, default=REFERENCE_STEPS,
                        help=f"steps of the reference's attacks (default {REFERENCE_STEPS})")
    parser.add_argument("--no-advlib", action="store_true", help="the package's own reference even if adv-lib is installed")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="output folder (default bench/)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one tiny model (checkpoints under --out), 8 images, tiny budgets; measures nothing")
    args = parser.parse_args(argv)
    step_budgets, alma_budgets, ddn_steps = STEP_BUDGETS, ALMA_BUDGETS, COMBINED_DDN_STEPS
    overrides, store = list(args.set), CheckpointStore()
    if args.smoke:
        args.models, args.samples, args.reference_steps = "3:none", SMOKE_SAMPLES, SMOKE_REFERENCE_STEPS
        step_budgets, alma_budgets, ddn_steps = SMOKE_STEP_BUDGETS, SMOKE_ALMA_BUDGETS, max(SMOKE_STEP_BUDGETS)
        overrides, store = [*SMOKE_OVERRIDES, *overrides], CheckpointStore(args.out / "checkpoints")
    if args.samples < 1 or args.threads < 1 or args.reference_steps < 1:
        parser.error("--samples, --threads and --reference-steps must be positive")
    torch.set_num_threads(args.threads)

    advlib = advlib_available() and not args.no_advlib
    advlib_note = "--no-advlib" if args.no_advlib else ("" if advlib else "adv_lib is not installed")
    if not advlib:
        print(f"adv-lib not used ({advlib_note}): the reference is the package's alma, ddn and superdeepfool",
              file=sys.stderr)
    configs = {name: load_suite(name, overrides if name == args.suite else None)
               for name in dict.fromkeys([*PRESETS, args.suite])}
    reference = reference_settings(args.reference_steps, advlib)
    singles = single_settings(step_budgets, alma_budgets)
    combos = combinations(configs, alma_budgets, ddn_steps)
    table, accuracy, attacked = benchmark(args.suite, overrides, parse_models(args.models), args.samples, reference,
                                          singles, combos, store, args.data_dir)

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "near_minimal.csv", index=False, float_format="%.6g")
    title = f"Optimality against cost, {args.suite} suite (reference: {args.reference_steps}-step attacks)"
    save_png(optimality_figure(table, title), args.out / "figures" / "near_minimal_optimality.png")
    text = markdown(table, accuracy, attacked, advlib, advlib_note, args)
    (args.out / "near_minimal.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
