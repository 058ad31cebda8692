"""The checkpoint store: round trip, reuse, keys, safe loading, and every way a file can be wrong."""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustbench_win.train import checkpoints
from robustbench_win.train import obtain
from robustbench_win.train.checkpoints import (
    CheckpointError,
    CheckpointStore,
    ModelSpec,
    build_model,
    load_model,
    read_checkpoint,
)
from robustbench_win.data.datasets import ImageData
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.obtain import obtain_model

CONFIG = TrainConfig(epochs=1, batch_size=16, lr=0.05, milestones=())


@pytest.fixture(scope="module")
def data() -> ImageData:
    """48 random 1 x 12 x 12 training images in 3 classes; enough to train one epoch in no time."""
    generator = torch.Generator().manual_seed(0)
    return ImageData(
        name="synthetic", display_name="synthetic",
        train_images=torch.randint(0, 256, (48, 1, 12, 12), dtype=torch.uint8, generator=generator),
        train_labels=torch.arange(48) % 3,
        test_images=torch.randint(0, 256, (24, 1, 12, 12), dtype=torch.uint8, generator=generator),
        test_labels=torch.arange(24) % 3,
        num_classes=3, augment=False,
    )


def make_spec(**changes: Any) -> ModelSpec:
    spec = ModelSpec("paper-cnn", {"kernel_size": 5, "window": "hamming", "depth": 2, "width": 4}, "synthetic", CONFIG)
    return replace(spec, **changes)


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "checkpoints")


def outputs(model: nn.Module, data: ImageData) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(data.test_tensors()[0])


# --------------------------------------------------------------------------- round trip and reuse


def test_round_trip_gives_identical_outputs(data: ImageData, store: CheckpointStore) -> None:
    spec = make_spec()
    trained = obtain_model(spec, data, store, progress=False)
    assert not trained.reused
    assert trained.checkpoint == store.path(spec) and trained.checkpoint.is_file()
    assert trained.checkpoint.name.startswith("paper-cnn_k5_hamming_s0_")
    assert not list(store.root.glob("*.tmp"))  # written atomically
    assert 0.0 <= trained.metrics["test_accuracy"] <= 1.0
    assert trained.metrics["in_channels"] == 1 and trained.metrics["num_classes"] == 3

    fresh = build_model(spec, data)
    assert not torch.equal(outputs(fresh, data), outputs(trained.model, data))
    payload = store.load(spec, fresh)
    assert payload is not None and payload["key"] == spec.key()
    assert torch.equal(outputs(fresh, data), outputs(trained.model, data))


def test_saved_state_holds_the_raw_weights(data: ImageData, store: CheckpointStore) -> None:
    trained = obtain_model(make_spec(), data, store, progress=False)
    state = read_checkpoint(trained.checkpoint)["state_dict"]
    stem = trained.model.features[0]
    assert torch.equal(state["features.0.weight"], stem.weight.detach())
    assert not any(key.endswith(".window") for key in state)


def test_second_obtain_loads_instead_of_training(data: ImageData, store: CheckpointStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec()
    first = obtain_model(spec, data, store, progress=False)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again although a checkpoint exists")

    monkeypatch.setattr(obtain, "train", no_training)
    second = obtain_model(spec, data, store, progress=False)
    assert second.reused and second.checkpoint == first.checkpoint
    assert second.metrics == first.metrics
    assert not second.model.training
    assert torch.equal(outputs(second.model, data), outputs(first.model, data))
    # Another spec is not served from that checkpoint.
    with pytest.raises(AssertionError, match="trained again"):
        obtain_model(make_spec(seed=1), data, store, progress=False)


def test_same_spec_trains_to_the_same_weights(data: ImageData, tmp_path: Path) -> None:
    a = obtain_model(make_spec(), data, CheckpointStore(tmp_path / "a"), progress=False)
    b = obtain_model(make_spec(), data, CheckpointStore(tmp_path / "b"), progress=False)
    assert torch.equal(outputs(a.model, data), outputs(b.model, data))


def test_load_model_rebuilds_from_the_file_alone(data: ImageData, store: CheckpointStore) -> None:
    trained = obtain_model(make_spec(), data, store, progress=False)
    model, payload = load_model(trained.checkpoint)
    assert not model.training
    assert payload["spec"]["model"] == "paper-cnn"
    assert payload["spec"]["model_kwargs"]["window"] == "hamming"
    assert torch.equal(outputs(model, data), outputs(trained.model, data))


# --------------------------------------------------------------------------- keys


def test_key_changes_with_every_field() -> None:
    variants = {
        "base": make_spec(),
        "model": make_spec(model="paper-cnn-small"),
        "kernel_size": make_spec(model_kwargs={"kernel_size": 7, "window": "hamming", "depth": 2, "width": 4}),
        "window": make_spec(model_kwargs={"kernel_size": 5, "window": "none", "depth": 2, "width": 4}),
        "extra kwarg": make_spec(model_kwargs={"kernel_size": 5, "window": "hamming", "depth": 2, "width": 4,
                                               "downsampling": "maxpool"}),
        "dataset": make_spec(dataset="mnist5k"),
        "seed": make_spec(seed=1),
        "train_size": make_spec(train_size=500),
        "extra": make_spec(extra={"note": "x"}),
    }
    for field_name, value in [("epochs", 2), ("batch_size", 32), ("lr", 0.1), ("momentum", 0.5),
                              ("weight_decay", 0.0), ("milestones", (1,)), ("lr_gamma", 0.5),
                              ("augment", True), ("augment", False), ("precision", "bf16")]:
        variants[f"train.{field_name}={value}"] = make_spec(train=replace(CONFIG, **{field_name: value}))
    keys = {name: spec.key() for name, spec in variants.items()}
    assert len(set(keys.values())) == len(keys), keys
    assert all(len(key) == 16 and int(key, 16) >= 0 for key in keys.values())
    paths = {CheckpointStore(Path("x")).path(spec) for spec in variants.values()}
    assert len(paths) == len(variants)


def test_key_is_stable_and_ignores_container_types_and_order() -> None:
    spec = make_spec()
    assert spec.key() == make_spec().key()
    reordered = make_spec(model_kwargs={"width": 4, "depth": 2, "window": "hamming", "kernel_size": 5})
    assert reordered.key() == spec.key()
    with_tuple = make_spec(model_kwargs={"mean": (0.5,), "std": (0.25,)})
    with_list = make_spec(model_kwargs={"mean": [0.5], "std": [0.25]})
    assert with_tuple.key() == with_list.key()


# --------------------------------------------------------------------------- files that must be refused


class Malicious:
    """Unpickling this runs ``os.mkdir(marker)``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the plain pickle
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_never_executed(writer: str, data: ImageData, store: CheckpointStore,
                                            tmp_path: Path) -> None:
    spec = make_spec()
    path = store.path(spec)
    path.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    payload = {"format": checkpoints.CHECKPOINT_FORMAT, "spec": spec.key_fields(), "state_dict": Malicious(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as handle:
            pickle.dump(payload, handle)

    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        store.load(spec, build_model(spec, data))
    with pytest.raises(CheckpointError):
        obtain_model(spec, data, store, progress=False)
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()

    # The file really is dangerous: an unsafe load would have run the code.
    if writer == "torch.save":
        control = tmp_path / "control"
        torch.save({"x": Malicious(control)}, tmp_path / "control.pt")
        torch.load(tmp_path / "control.pt", weights_only=False)
        assert control.exists()


def test_truncated_file_is_a_checkpoint_error(data: ImageData, store: CheckpointStore) -> None:
    spec = make_spec()
    path = obtain_model(spec, data, store, progress=False).checkpoint
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(CheckpointError, match=r"corrupt.*delete it"):
        store.load(spec, build_model(spec, data))
    with pytest.raises(CheckpointError):  # never silently retrained over
        obtain_model(spec, data, store, progress=False)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


@pytest.mark.parametrize("payload", [{"a": 1}, [1, 2, 3], {"format": 99, "state_dict": {}}, {"format": 1}])
def test_foreign_file_is_a_checkpoint_error(payload: object, tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="not a robustbench-win checkpoint"):
        read_checkpoint(path)


def test_checkpoint_of_another_spec_is_refused(data: ImageData, store: CheckpointStore) -> None:
    spec, other = make_spec(), make_spec(seed=7)
    path = obtain_model(spec, data, store, progress=False).checkpoint
    store.path(other).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, store.path(other))
    with pytest.raises(CheckpointError, match="was made for"):
        store.load(other, build_model(other, data))


def test_state_dict_that_does_not_fit_is_refused(data: ImageData, store: CheckpointStore) -> None:
    spec = make_spec()
    wider = make_spec(model_kwargs={**spec.model_kwargs, "width": 6})
    store.save(spec, build_model(wider, data), {"in_channels": 1, "num_classes": 3})
    with pytest.raises(CheckpointError, match="does not fit the model"):
        store.load(spec, build_model(spec, data))


def test_missing_checkpoint_loads_nothing(data: ImageData, store: CheckpointStore) -> None:
    assert store.load(make_spec(), build_model(make_spec(), data)) is None


def test_default_checkpoint_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(checkpoints.CHECKPOINT_DIR_ENV, str(tmp_path / "ckpt"))
    assert CheckpointStore().root == tmp_path / "ckpt"
    monkeypatch.delenv(checkpoints.CHECKPOINT_DIR_ENV)
    monkeypatch.setenv("ROBUSTBENCH_WIN_CACHE", str(tmp_path / "cache"))
    assert CheckpointStore().root == tmp_path / "cache" / "checkpoints"


# --------------------------------------------------------------------------- a long training on a CPU is announced


def test_gpu_sized_training_on_a_cpu_is_announced_with_its_time(data: ImageData, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    quiet = obtain_model(make_spec(), data, CheckpointStore(tmp_path / "a"), progress=False)
    assert not caplog.records  # a small model trains without a word
    monkeypatch.setattr(obtain, "CPU_WARNING_SECONDS", 0.0)
    with caplog.at_level("WARNING", logger="robustbench_win"):
        announced = obtain_model(make_spec(), data, CheckpointStore(tmp_path / "b"), progress=False)
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("paper-cnn_k5_hamming_s0 is GPU-sized: training it on this CPU")
    assert "will take about" in message and "1 epochs x 3 steps" in message  # 48 images, batch 16
    # Timing the estimate trains a copy: the model itself comes out exactly the same.
    assert torch.equal(outputs(announced.model, data), outputs(quiet.model, data))


def test_the_estimate_leaves_the_model_and_the_random_state_alone(data: ImageData) -> None:
    model = build_model(make_spec(), data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    seconds, per_step = obtain.estimate_train_seconds(model, data, CONFIG, device=torch.device("cpu"), threshold=1e-9)
    assert seconds == pytest.approx(per_step * 3) and per_step > 0  # 1 epoch of 3 steps
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)
