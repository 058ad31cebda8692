"""Figures of the report: metrics against kernel size, one line per window.

Each ``*_figure`` function takes a table from :mod:`robustbench_win.analysis.tables` (or the raw
records it is computed from) and draws one line per window with error bars of one standard
deviation over seeds; each ``plot_*`` function also writes it as a PNG, atomically. Figures are
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

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robustbench_win.analysis import tables
from robustbench_win.atomic import write_atomic
from robustbench_win.measure.leakage import N_FFT, centred_spectrum_db
from robustbench_win.ordering import attack_order, ordered, sort_records, window_order

KERNEL_LABEL = "kernel size k (pixels)"
_DPI = 120
_PANEL_SIZE = (4.6, 3.4)  # inches per panel
_JITTER = 0.08  # horizontal offset between windows, in kernel-size units, so error bars stay apart
_TITLE_SHARE = 0.95  # of the figure's width that a title line may take
_CURVE_PANEL_SIZE = (4.4, 3.3)  # inches per panel of the security-curve figure
_PANELS_PER_ROW = 3


def _new_figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(_PANEL_SIZE[0] * n_panels, _PANEL_SIZE[1] + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, n_panels, squeeze=False)[0])
    _fit_title(fig, title)
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


def save_png(fig: Figure, path: Path | str) -> Path:
    """Write ``fig`` as PNG atomically (no half-written figure if interrupted)."""
    buffer = io.BytesIO()
    # No "Software" entry: the bytes then depend on the data and the matplotlib version only.
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return write_atomic(path, buffer.getvalue())


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


def _draw(ax: Axes, x: pd.Series, y: pd.Series, err: pd.Series, offset: float, label: str) -> None:
    keep = y.notna().to_numpy()
    if not keep.any():
        return
    xs = x.to_numpy(dtype=float)[keep] + offset
    ys = y.to_numpy(dtype=float)[keep]
    es = np.nan_to_num(err.to_numpy(dtype=float)[keep])  # one seed: no error bar
    ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)


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
        _draw(ax, rows["kernel_size"], rows[f"{window}:acc_mean"], rows[f"{window}:acc_std"], offset, label)
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
            _draw(ax, rows["kernel_size"], rows["mean_rho_mean"], rows["mean_rho_std"], offset, label)
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
            _draw(ax, rows["kernel_size"], mean, std, offset, label)
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


def _draw_window(ax: Axes, rows: pd.DataFrame, label: str) -> None:
    """Mean over seeds as a step line, min-max over seeds as a band."""
    by_eps = rows.groupby("eps", sort=True)["robust_acc"]
    eps, mean = by_eps.mean().index.to_numpy(dtype=float), by_eps.mean().to_numpy(dtype=float)
    line, = ax.step(eps, mean, where="post", label=f"{label} ({rows['seed'].nunique()} seeds)")
    ax.fill_between(eps, by_eps.min().to_numpy(dtype=float), by_eps.max().to_numpy(dtype=float),
                    step="post", alpha=0.2, color=line.get_color(), linewidth=0)


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
    several = len({p[:2] for p in panels}) > 1
    for ax, key in zip(axes, panels):
        part = curves[(curves["dataset"] == key[0]) & (curves["model"] == key[1]) & (curves["kernel_size"] == key[2])]
        for window in ordered(part["window"].astype(str), window_order()):
            _draw_window(ax, part[part["window"] == window], window)
        ax.set(title=_panel_title(key, several), xlabel="L2 radius ε", ylabel="robust accuracy (%)",
               xlim=(0.0, max(float(part["eps"].max()), 1e-9)), ylim=(-2, 102))
        ax.grid(True, alpha=0.3)
        ax.legend(title="window", fontsize="small", loc="upper right")
    for ax in axes[len(panels):]:
        ax.remove()
    source = ", ".join(sorted(curves["norms_from"].astype(str).unique()))
    _fit_title(fig, title or f"Robust accuracy vs L2 (best-known norms over {source}; band: min-max over seeds)")
    return fig


def plot_security_curves(curves: pd.DataFrame, path: Path | str, *, title: str | None = None) -> Path:
    """Security-evaluation curves: robust accuracy vs L2, a panel per kernel size, a line per window.

    Lines are the mean over seeds of :func:`~robustbench_win.analysis.norms.security_curves` (steps: the curve is a step
    function), bands the min-max over seeds. Constrained layout keeps every label inside.

    Args:
        curves: Output of :func:`robustbench_win.analysis.norms.security_curves`.
        path: PNG file to write (atomically).
        title: Figure title; default names the attacks the best-known norms come from.

    Returns:
        ``path``.

    Raises:
        ValueError: ``curves`` is empty.
    """
    return save_png(draw_security_curves(curves, title=title), path)


# --------------------------------------------------------------------------- diagnostics


def metric_panels_figure(table: pd.DataFrame, title: str, panels: list[tuple[str, str]]) -> Figure:
    """One panel per ``(metric, y label)`` against k, a line per window, from a long table (a row per
    configuration, ``<metric>_mean`` and ``<metric>_std`` over seeds), such as a per-model measure's."""
    fig, axes = _new_figure(len(panels), title)
    windows = ordered(table["window"], window_order())
    for ax, (metric, ylabel) in zip(axes, panels):
        for label, window, rows, offset in _lines(table, windows):
            rows = rows[rows["window"] == window]
            _draw(ax, rows["kernel_size"], rows[f"{metric}_mean"], rows[f"{metric}_std"], offset, label)
        _finish(ax, table["kernel_size"], ylabel)
    return fig


def leakage_figure(table: pd.DataFrame, title: str) -> Figure:
    """Spectral leakage of the block layers against k, a line per window: raw, and minus the
    Gaussian-kernel null of each layer's k and window (comparable across k).

    Args:
        table: :func:`robustbench_win.analysis.diagnostic_tables.leakage_table`.
        title: Figure title (should name the data set).
    """
    _require(table, "leakage")
    return metric_panels_figure(table, title, [("leakage", "leakage of the block layers (raw)"),
                                              ("leakage_excess", "leakage minus the random-kernel null")])


def shift_figure(table: pd.DataFrame, title: str) -> Figure:
    """Shift consistency and worst single-shift accuracy against k, a line per window.

    Args:
        table: :func:`robustbench_win.analysis.diagnostic_tables.shift_table`.
        title: Figure title (should name the data set).
    """
    _require(table, "shift consistency")
    return metric_panels_figure(table, title, [("consistency", "shift consistency (%)"),
                                              ("worst_shift_acc", "accuracy under the worst single shift (%)")])


def kernel_examples_figure(kernels: pd.DataFrame, title: str, *, n_fft: int = N_FFT) -> Figure:
    """Example effective kernels and their power spectra (dB) of the largest-k models, windows side by side.

    For the largest kernel size in ``kernels``, the lowest seed and each window: the strongest
    stored slices (rows) as the kernel (diverging colours, symmetric about 0) next to its
    zero-padded power spectrum relative to its peak, DC in the centre.

    Args:
        kernels: Stored example-kernel records (:data:`robustbench_win.store.records.KERNEL_RECORDS`).
        title: Figure title (should name the data set).
        n_fft: Zero-padded DFT size of the spectra.
    """
    _require(kernels, "example kernels")
    large = kernels[kernels["kernel_size"] == kernels["kernel_size"].max()]
    large = large[large["seed"] == large["seed"].min()]
    windows = ordered(large["window"], window_order())
    slices = sorted(large["slice"].unique())
    fig = Figure(figsize=(2.2 * 2 * len(windows), 2.1 * len(slices) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(slices), 2 * len(windows), squeeze=False)
    _fit_title(fig, title)
    for column, window in enumerate(windows):
        rows = large[large["window"] == window]
        for row, index in enumerate(slices):
            taps = rows[rows["slice"] == index].pivot(index="row", columns="col", values="weight").to_numpy()
            limit = float(np.abs(taps).max()) or 1.0
            spectrum = centred_spectrum_db(torch.tensor(taps)[None], n_fft=n_fft)[0].numpy()
            kernel_ax, spectrum_ax = axes[row, 2 * column], axes[row, 2 * column + 1]
            kernel_ax.imshow(taps, cmap="RdBu_r", vmin=-limit, vmax=limit)
            spectrum_ax.imshow(spectrum, cmap="magma", vmin=-60.0, vmax=0.0)
            for ax in (kernel_ax, spectrum_ax):
                ax.set_xticks([])
                ax.set_yticks([])
            if row == 0:
                k = int(rows["kernel_size"].iloc[0])
                kernel_ax.set_title(f"{window}: kernel {k}×{k}", fontsize="small")
                spectrum_ax.set_title(f"{window}: power (dB)", fontsize="small")
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
