"""A data set as a spec names it: loaded with its own arguments, then stratified subsets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustbench_win.data.datasets import ImageData, load_dataset, subsample


def prepare_data(dataset: str, *, train_size: int | None, test_size: int | None, data_dir: Path | None,
                 download: bool, dataset_args: dict[str, Any] | None = None) -> ImageData:
    """Load ``dataset`` (with its own ``dataset_args``) and apply the stratified subsets a spec names."""
    data = load_dataset(dataset, data_dir=data_dir, download=download, **(dataset_args or {}))
    return subsample(data, train_size=train_size, test_size=test_size)
