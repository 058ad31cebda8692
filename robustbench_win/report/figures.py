"""Figures of the report: metrics against kernel size, one line per window.

Each ``*_figure`` function takes a table from :mod:`robustbench_win.analysis.tables` (or the raw
records it is computed from) and draws one line per window with error bars of one convention
(:data:`BAND_NOTE`: the mean over seeds with its 95 % t-interval, accuracies clipped to [0, 100]);
each ``plot_*`` function also writes it, atomically, as a PNG (:data:`DPI`) and an SVG beside it
(:func:`save_png`), both reproducible byte for byte. Figures are
drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global backend change).
A title too long for the figure is wrapped onto more lines, so no text is cut at an edge.
The security-evaluation figure (:func:`plot_security_curves`) plots robust accuracy against the
L2 radius instead, a panel per kernel size.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

from numpy.typing import ArrayLike

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from robustbench_win.analysis import tables
from robustbench_win.atomic import write_atomic
from robustbench_win.measure.leakage import EXAMPLE_RULE, N_FFT, centred_spectrum_db
from robustbench_win.ordering import attack_order, ordered, sort_records, window_order

KERNEL_LABEL = "kernel size k (pixels)"
DPI = 150  # print resolution of the PNGs
VECTOR_SUFFIX = ".svg"  # the vector copy written beside every PNG
BAND_NOTE = "bars: mean and 95 % t-interval over seeds"
PERCENT = (0.0, 100.0)  # the range of an accuracy: its drawn interval is clipped to it
# Fixed so that the SVG's element ids, and so its bytes, are the same at every build.
_SVG_SETTINGS = {"svg.hashsalt": "robustbench-win", "svg.fonttype": "path"}
_PANEL_SIZE = (4.6, 3.4)  # inches per panel
_JITTER = 0.08  # horizontal offset between windows, in kernel-size units, so error bars stay apart
_TITLE_SHARE = 0.95  # of the figure's width that a title line may take
_CURVE_PANEL_SIZE = (4.4, 3.3)  # inches per panel of the security-curve figure
_PANELS_PER_ROW = 3


def _new_figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(_PANEL_SIZE[0] * n_panels, _PANEL_SIZE[1] + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, n_panels, squeeze=False)[0])
    _fit_title(fig, f"{title} ({BAND_NOTE})")
    return fig, axes


def _fit_title(fig: Figure, title: str) -> None:
    """Set the figure title, wrapped at word boundaries until every line fits the figure's width."""
    text = fig.suptitle(title)
    renderer = fig.canvas.get_renderer()
    usable = fig.bbox.width * _TITLE_SHARE
    for width in range(len(title), 0, -1):
        text.set_text(textwrap.fill(title, width, break_long_words=False))
        if text.get_window_extent(renderer).width <= usable:
            return


def vector_path(path: Path | str) -> Path:
    """Where :func:`save_png` writes the vector copy of the PNG at ``path``."""
    return Path(path).with_suffix(VECTOR_SUFFIX)


def save_png(fig: Figure, path: Path | str) -> Path:
    """Write ``fig`` atomically as a PNG at :data:`DPI` and as an SVG beside it (:func:`vector_path`).

    Neither file records a date or the software, and the SVG's ids are salted with a fixed
    string: rebuilding a figure from the same data gives the same bytes.

    Returns:
        The PNG's path.
    """
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
    with matplotlib.rc_context(_SVG_SETTINGS):
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    write_atomic(vector_path(path), svg.getvalue())
    return write_atomic(path, png.getvalue())


def interval(mean: ArrayLike, std: ArrayLike, n_seeds: ArrayLike,
             bounds: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 95 % t-interval of a mean over seeds: ``mean ± t_{0.975, n-1} · std / √n``.

    Args:
        mean: Means over seeds.
        std: Their sample standard deviations.
        n_seeds: Seeds behind each mean; fewer than 2 (or a missing spread): the interval is the mean.
        bounds: Where the quantity is bounded (such as :data:`PERCENT`): the interval is clipped to it.

    Returns:
        ``(low, high)``.
    """
    mean = np.asarray(mean, dtype=float)
    n = np.asarray(n_seeds, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.975, np.where(n >= 2, n - 1, np.nan)) * np.asarray(std, dtype=float) / np.sqrt(n)
    half = np.nan_to_num(half)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return low, high


def _png_writer(draw: Callable[[pd.DataFrame, str], Figure]) -> Callable[[pd.DataFrame, Path | str, str], Path]:
    """A ``plot_*`` function: ``draw(table, title)`` written as a PNG to ``path``, which it returns."""

    def plot(table: pd.DataFrame, path: Path | str, title: str) -> Path:
        return save_png(draw(table, title), path)

    plot.__doc__ = f":func:`{draw.__name__}` written as a PNG to ``path``; returns ``path``."
    return plot


def _lines(table: pd.DataFrame, windows: list[str]) -> Iterator[tuple[str, str, pd.DataFrame, float]]:
    """(label, window, rows, x offset) per (data set, model) and window.

    Labels name the model when the table holds several.
    """
    configs = list(table[["dataset", "model"]].drop_duplicates().itertuples(index=False))
    for dataset, model in configs:
        rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
        for window in windows:
            label = window if len(configs) == 1 else f"{model} ({dataset}), {window}"
            offset = (windows.index(window) - (len(windows) - 1) / 2) * _JITTER
            yield label, window, rows, offset


def _draw(ax: Axes, x: pd.Series, y: pd.Series, std: pd.Series, n_seeds: pd.Series | float, offset: float,
          label: str, bounds: tuple[float, float] | None = None) -> None:
    """The means ``y`` against ``x`` with their 95 % intervals over seeds (:func:`interval`)."""
    keep = y.notna().to_numpy()
    if not keep.any():
        return
    xs = x.to_numpy(dtype=float)[keep] + offset
    ys = y.to_numpy(dtype=float)[keep]
    n = np.broadcast_to(np.asarray(n_seeds, dtype=float), keep.shape)[keep]
    low, high = interval(ys, std.to_numpy(dtype=float)[keep], n, bounds)  # one seed: no error bar
    ax.errorbar(xs, ys, yerr=np.vstack([ys - low, high - ys]), marker="o", capsize=3, label=label)


def _finish(ax: Axes, kernel_sizes: pd.Series, ylabel: str) -> None:
    ticks = sorted({int(k) for k in kernel_sizes.dropna()})
    ax.set_xticks(ticks)
    ax.set_xlabel(KERNEL_LABEL)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title="window", fontsize="small")


def _require(table: pd.DataFrame, what: str) -> None:
    if table.empty:
        raise ValueError(f"nothing to plot: the {what} table is empty (no stored results for it)")


def clean_accuracy_figure(table: pd.DataFrame, title: str) -> Figure:
    """Clean test accuracy (%) against kernel size, one line per window.

    Args:
        table: :func:`tables.clean_accuracy_table`, or the per-model clean records.
        title: Figure title (should name the data set).
    """
    if "accuracy" in table.columns:
        table = tables.clean_accuracy_table(table)
    _require(table, "clean accuracy")
    windows = [c.split(":", 1)[0] for c in table.columns if c.endswith(":acc_mean")]
    fig, (ax,) = _new_figure(1, title)
    for label, window, rows, offset in _lines(table, windows):
        _draw(ax, rows["kernel_size"], rows[f"{window}:acc_mean"], rows[f"{window}:acc_std"], rows[f"{window}:n_seeds"],
              offset, label, PERCENT)
    _finish(ax, table["kernel_size"], "clean test accuracy (%)")
    return fig


def deepfool_rho_figure(table: pd.DataFrame, title: str) -> Figure:
    """Mean DeepFool ρ_adv = ||r||_2 / ||x||_2 against kernel size; a panel per attack.

    Args:
        table: :func:`tables.deepfool_table`, or the per-sample attack records.
        title: Figure title (should name the data set).
    """
    if "family" in table.columns:
        table = tables.deepfool_table(table)
    _require(table, "DeepFool")
    attacks = ordered(table["attack"], attack_order())
    fig, axes = _new_figure(len(attacks), title)
    for ax, attack in zip(axes, attacks):
        part = table[table["attack"] == attack]
        windows = ordered(part["window"], window_order())
        for label, window, rows, offset in _lines(part, windows):
            rows = rows[rows["window"] == window]
            _draw(ax, rows["kernel_size"], rows["mean_rho_mean"], rows["mean_rho_std"], rows["n_seeds"], offset, label)
        ax.set_title(attack)
        _finish(ax, part["kernel_size"], "mean ρ_adv = ‖r‖₂ / ‖x‖₂ (successful samples)")
    return fig


def spatial_robust_accuracy_figure(table: pd.DataFrame, title: str) -> Figure:
    """Spatial robust accuracy (%) against kernel size; a panel per spatial attack.

    Args:
        table: :func:`tables.spatial_table`, or the per-sample attack records.
        title: Figure title (should name the data set).
    """
    if "family" in table.columns:
        table = tables.spatial_table(table)
    attacks = tables.spatial_attacks(table)
    if not attacks:
        table = table.iloc[0:0]
    _require(table, "spatial")
    fig, axes = _new_figure(len(attacks), title)
    windows = ordered(table["window"], window_order())
    for ax, attack in zip(axes, attacks):
        for label, window, rows, offset in _lines(table, windows):
            rows = rows[rows["window"] == window]
            mean, std = rows[f"{attack}:robust_acc_mean"], rows[f"{attack}:robust_acc_std"]
            _draw(ax, rows["kernel_size"], mean, std, rows[f"{attack}:n_seeds"], offset, label, PERCENT)
        ax.set_title(attack)
        _finish(ax, table["kernel_size"], "robust accuracy (%)")
    return fig


plot_clean_accuracy = _png_writer(clean_accuracy_figure)
plot_deepfool_rho = _png_writer(deepfool_rho_figure)
plot_spatial_robust_accuracy = _png_writer(spatial_robust_accuracy_figure)


# --------------------------------------------------------------------------- security curves


def _panel_title(key: tuple, several_models: bool) -> str:
    dataset, model, kernel_size = key
    return f"{model} ({dataset}), k = {kernel_size}" if several_models else f"k = {kernel_size}"


RADIUS_COLUMN = "verdict_radius"  # optional column of the curves: the radius the verdict's AUC is taken to


def _draw_window(ax: Axes, rows: pd.DataFrame, label: str) -> None:
    """Mean over seeds as a step line, its 95 % t-interval over seeds (clipped to [0, 100]) as a band."""
    by_eps = rows.groupby("eps", sort=True)["robust_acc"]
    eps, mean = by_eps.mean().index.to_numpy(dtype=float), by_eps.mean().to_numpy(dtype=float)
    low, high = interval(mean, by_eps.std().to_numpy(dtype=float), by_eps.count().to_numpy(dtype=float), PERCENT)
    line, = ax.step(eps, mean, where="post", label=f"{label} ({rows['seed'].nunique()} seeds)")
    ax.fill_between(eps, low, high, step="post", alpha=0.2, color=line.get_color(), linewidth=0)


def draw_security_curves(curves: pd.DataFrame, *, title: str | None = None) -> Figure:
    """The figure of :func:`plot_security_curves`, drawn on an Agg canvas but not saved."""
    if curves.empty:
        raise ValueError("nothing to plot: the security curves are empty (no minimal-norm attack records)")
    panels = list(sort_records(curves[["dataset", "model", "kernel_size"]].drop_duplicates(),
                               ["dataset", "model", "kernel_size"]).itertuples(index=False, name=None))
    columns = min(len(panels), _PANELS_PER_ROW)
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(_CURVE_PANEL_SIZE[0] * columns, _CURVE_PANEL_SIZE[1] * rows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels):]:  # the last row's unused cells: no empty panel
        fig.delaxes(ax)
    radius = float(curves[RADIUS_COLUMN].iloc[0]) if RADIUS_COLUMN in curves.columns else None
    several = len({p[:2] for p in panels}) > 1
    for ax, key in zip(axes, panels):
        part = curves[(curves["dataset"] == key[0]) & (curves["model"] == key[1]) & (curves["kernel_size"] == key[2])]
        for window in ordered(part["window"].astype(str), window_order()):
            _draw_window(ax, part[part["window"] == window], window)
        right = max(float(part["eps"].max()), radius or 0.0, 1e-9)
        if radius is not None:
            ax.axvline(radius, color="0.25", linestyle="--", linewidth=1, label=f"verdict radius ε = {radius:g}")
        ax.set(title=_panel_title(key, several), xlabel="L2 radius ε", ylabel="robust accuracy (%)",
               xlim=(0.0, right), ylim=(-2, 102))
        ax.grid(True, alpha=0.3)
        ax.legend(title="window", fontsize="small", loc="upper right")
    source = ", ".join(sorted(curves["norms_from"].astype(str).unique()))
    _fit_title(fig, title or f"Robust accuracy vs L2 (best-known norms over {source}; band: 95 % t-interval over seeds)")
    return fig


def plot_security_curves(curves: pd.DataFrame, path: Path | str, *, title: str | None = None) -> Path:
    """Security-evaluation curves: robust accuracy vs L2, a panel per kernel size, a line per window.

    Lines are the mean over seeds of :func:`~robustbench_win.analysis.norms.security_curves` (steps: the curve is a step
    function), bands its 95 % t-interval over seeds clipped to [0, 100]; a dashed line marks the
    radius the verdict's AUC is taken to, when the curves carry it. Constrained layout keeps every label inside.

    Args:
        curves: Output of :func:`robustbench_win.analysis.norms.security_curves`, optionally with a
            :data:`RADIUS_COLUMN` (the same radius on every row).
        path: PNG file to write (atomically).
        title: Figure title; default names the attacks the best-known norms come from.

    Returns:
        ``path``.

    Raises:
        ValueError: ``curves`` is empty.
    """
    return save_png(draw_security_curves(curves, title=title), path)


# --------------------------------------------------------------------------- diagnostics


def metric_panels_figure(table: pd.DataFrame, title: str, panels: list[tuple[str, ...]]) -> Figure:
    """One panel per ``(metric, y label)`` or ``(metric, y label, panel title)`` against k, a line per
    window, from a long table (a row per configuration, ``<metric>_mean``, ``<metric>_std`` and
    ``n_seeds``), such as a per-model measure's. A metric whose label is in % is an accuracy or a
    share: its intervals are clipped to [0, 100]."""
    fig, axes = _new_figure(len(panels), title)
    windows = ordered(table["window"], window_order())
    for ax, (metric, ylabel, *panel_title) in zip(axes, panels):
        bounds = PERCENT if "(%)" in ylabel else None
        for label, window, rows, offset in _lines(table, windows):
            rows = rows[rows["window"] == window]
            _draw(ax, rows["kernel_size"], rows[f"{metric}_mean"], rows[f"{metric}_std"], rows["n_seeds"], offset, label,
                  bounds)
        if panel_title:
            ax.set_title(textwrap.fill(panel_title[0], 48), fontsize="medium")
        _finish(ax, table["kernel_size"], ylabel)
    return fig


LEAKAGE_PANELS = [
    ("leakage_change", "learned change of the leakage",
     "Block layers: trained minus untrained leakage (what the verdict tests)"),
    ("leakage", "leakage of the block layers", "Block layers: leakage of the trained model"),
]


def leakage_figure(table: pd.DataFrame, title: str) -> Figure:
    """Spectral leakage of the block layers against k, a line per window (:data:`LEAKAGE_PANELS`):
    the learned change (trained minus the untrained model of the same seed) that the leakage
    verdict compares, and the trained leakage itself.

    Args:
        table: :func:`robustbench_win.analysis.diagnostic_tables.leakage_table`.
        title: Figure title (should name the data set).
    """
    _require(table, "leakage")
    return metric_panels_figure(table, title, LEAKAGE_PANELS)


def shift_figure(table: pd.DataFrame, title: str) -> Figure:
    """Shift consistency and worst single-shift accuracy against k, a line per window.

    Args:
        table: :func:`robustbench_win.analysis.diagnostic_tables.shift_table`.
        title: Figure title (should name the data set).
    """
    _require(table, "shift consistency")
    return metric_panels_figure(table, title, [("consistency", "shift consistency (%)"),
                                              ("worst_shift_acc", "accuracy under the worst single shift (%)")])


SPECTRUM_FLOOR_DB = -60.0  # the kernel figure's power scale runs from here to the peak (0 dB)


def kernel_examples_figure(kernels: pd.DataFrame, title: str, *, n_fft: int = N_FFT) -> Figure:
    """Example effective kernels and their power spectra (dB) of the largest-k models, windows side by side.

    For the largest kernel size in ``kernels``, the lowest seed and each window: the stored slices
    (rows; :data:`~robustbench_win.measure.leakage.EXAMPLE_RULE`) as the kernel divided by its
    largest absolute weight (diverging colours, -1 to 1) next to its zero-padded power spectrum
    relative to its peak, DC in the centre; a colour bar for each scale. The title says which
    layer, seed and selection rule.

    Args:
        kernels: Stored example-kernel records (:data:`robustbench_win.store.records.KERNEL_RECORDS`).
        title: Figure title (should name the data set).
        n_fft: Zero-padded DFT size of the spectra.
    """
    _require(kernels, "example kernels")
    large = kernels[kernels["kernel_size"] == kernels["kernel_size"].max()]
    seed = int(large["seed"].min())
    large = large[large["seed"] == seed]
    windows = ordered(large["window"], window_order())
    slices = sorted(large["slice"].unique())
    layers = ", ".join(sorted(large["layer"].astype(str).unique()))
    fig = Figure(figsize=(2.2 * 2 * len(windows) + 1.2, 2.1 * len(slices) + 1.0), layout="constrained")
    fig.get_layout_engine().set(w_pad=6 / 72)  # room for the rotated colour-bar labels at the edges
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(slices), 2 * len(windows), squeeze=False)
    _fit_title(fig, f"{title}: layer {layers}, seed {seed}; rows: {EXAMPLE_RULE}")
    kernel_image = spectrum_image = None
    for column, window in enumerate(windows):
        rows = large[large["window"] == window]
        for row, index in enumerate(slices):
            taps = rows[rows["slice"] == index].pivot(index="row", columns="col", values="weight").to_numpy()
            peak = float(np.abs(taps).max()) or 1.0
            spectrum = centred_spectrum_db(torch.tensor(taps)[None], n_fft=n_fft, floor_db=SPECTRUM_FLOOR_DB)[0].numpy()
            kernel_ax, spectrum_ax = axes[row, 2 * column], axes[row, 2 * column + 1]
            kernel_image = kernel_ax.imshow(taps / peak, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
            spectrum_image = spectrum_ax.imshow(spectrum, cmap="magma", vmin=SPECTRUM_FLOOR_DB, vmax=0.0)
            for ax in (kernel_ax, spectrum_ax):
                ax.set_xticks([])
                ax.set_yticks([])
            if row == 0:
                k = int(rows["kernel_size"].iloc[0])
                kernel_ax.set_title(f"{window}: kernel {k}×{k}", fontsize="small")
                spectrum_ax.set_title(f"{window}: power (dB)", fontsize="small")
    kernel_axes, spectrum_axes = axes[:, 0::2].ravel().tolist(), axes[:, 1::2].ravel().tolist()
    fig.colorbar(kernel_image, ax=kernel_axes, location="left", shrink=0.6, label="weight / max |weight|")
    fig.colorbar(spectrum_image, ax=spectrum_axes, location="right", shrink=0.6, label="power rel. to peak (dB)")
    return fig


plot_leakage = _png_writer(leakage_figure)
plot_shift = _png_writer(shift_figure)
plot_kernel_examples = _png_writer(kernel_examples_figure)


def plot_metric_panels(panels: list[tuple[str, str]], what: str) -> Callable[[pd.DataFrame, Path | str, str], Path]:
    """A ``plot_*`` function drawing :func:`metric_panels_figure` of ``panels`` (a report part's figure).

    Args:
        panels: ``(metric, y label)`` of each panel.
        what: The table's name in the message when it is empty.
    """
    def draw(table: pd.DataFrame, title: str) -> Figure:
        _require(table, what)
        return metric_panels_figure(table, title, panels)

    draw.__name__ = "metric_panels_figure"
    return _png_writer(draw)
