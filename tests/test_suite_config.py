"""Suite files: presets load, overrides apply, bad keys and values fail before any work."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from robustbench_win.suite import SuiteError, apply_override, dump_toml, load_suite, shipped_suites, suite_from_dict

PRESETS = ("quick", "mnist14", "fashion-mnist", "cifar10", "cifar100", "cifar10-paper")


def minimal_suite(**changes: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "name": "t", "dataset": "mnist5k", "kernel_sizes": [3, 5],
        "model": {"name": "paper-cnn", "args": {"width": 8, "depth": 3}},
        "attacks": [{"name": "deepfool"}],
    }
    raw.update(changes)
    return raw


def test_every_shipped_preset_is_listed_and_valid() -> None:
    assert set(PRESETS) <= set(shipped_suites())
    for name in PRESETS:
        config = load_suite(name)
        assert config.name == name
        assert config.kernel_sizes == (3, 5, 7, 9, 11)
        assert "none" in config.windows and "hamming" in config.windows
        assert {a.name for a in config.attacks} >= {"deepfool", "spatial-grid", "spatial-random"}


def test_cpu_presets_say_what_they_reduced_from_the_paper() -> None:
    for name in ("quick", "mnist14", "fashion-mnist", "cifar10", "cifar100"):
        assert any("paper" in note for note in load_suite(name).notes), name


def test_paper_preset_has_the_authors_hyper_parameters() -> None:
    config = load_suite("cifar10-paper")
    assert config.train.epochs == 150 and config.train.batch_size == 32 and config.train.lr == 0.01
    assert config.train.milestones == (75, 120) and config.train.weight_decay == 0.001
    assert config.model_args["width"] == 256 and config.model_args["depth"] == 6
    assert len(config.seeds) == 5


def test_overrides_reach_nested_fields_and_parse_values() -> None:
    config = load_suite("quick", ["train.epochs=3", "kernel_sizes=[3, 7]", "dataset=mnist5k-14", "model.args.width=8"])
    assert config.train.epochs == 3
    assert config.kernel_sizes == (3, 7)
    assert config.dataset == "mnist5k-14"
    assert config.model_args["width"] == 8


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochz=3", "unknown key 'train.epochz' (did you mean 'train.epochs'?)"),
        ("kernel_sizes=[3, 4]", "kernel size must be an odd integer"),
        ("windows=['none', 'hanning']", "unknown window 'hanning'"),
        ("train.lr=-1", "lr must be positive"),
        ("dataset=mnist5", "unknown dataset 'mnist5'"),
        ("attack_samples=0", "'attack_samples' must be an integer >= 1"),
        ("colour=red", "unknown key 'colour'"),
        ("model.args.depth=1", "model 'paper-cnn' rejects its arguments"),
        ("attacks=[{name='deepfool', steps=0}]", "bad parameters for attack 'deepfool'"),
        ("attacks=[{name='deepfoo'}]", "unknown attack 'deepfoo'"),
        ("report.radii=[0.5, -1]", "radii must be positive"),
    ],
)
def test_bad_keys_and_values_fail_with_a_message_naming_them(override: str, expected: str) -> None:
    with pytest.raises(SuiteError) as error:
        load_suite("quick", [override])
    assert expected in str(error.value)


def test_set_without_equals_is_rejected() -> None:
    with pytest.raises(SuiteError, match="KEY=VALUE"):
        apply_override({}, "train.epochs")


def test_unknown_preset_suggests_close_names(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="Did you mean quick"):
        load_suite("quik")


def test_invalid_toml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = [unclosed")
    with pytest.raises(SuiteError, match="broken.toml is not valid TOML"):
        load_suite(str(path))


def test_missing_required_key() -> None:
    raw = minimal_suite()
    del raw["kernel_sizes"]
    with pytest.raises(SuiteError, match="missing required key 'kernel_sizes'"):
        suite_from_dict(raw)


def test_resolved_toml_round_trips() -> None:
    config = load_suite("quick", ["train.epochs=2"])
    again = suite_from_dict(tomllib.loads(config.to_toml()))
    assert again == config
    assert dump_toml(again.raw) == config.to_toml()


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=fast", "'train.lr' must be a number, got 'fast' (str); for example --set train.lr=0.05"),
    ("train.epochs=2.5", "'train.epochs' must be an integer, got 2.5"),
    ("train.epochs=true", "'train.epochs' must be an integer, got True"),
    ("train.milestones=[2, 'x']", "'train.milestones' must be a list of integers"),
    ("train.augment=1", "'train.augment' must be true or false, got 1"),
    ("train.precision=fp16", "'train.precision' must be one of 'fp32', 'bf16', got 'fp16'"),
    ("seeds=[0, -2]", "seeds must be integers >= 0, got -2"),
])
def test_values_of_the_wrong_type_name_the_key_and_what_was_expected(override: str, message: str) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite("quick", [override])
    assert message in str(info.value)


def test_integer_learning_rates_and_empty_milestones_are_fine() -> None:
    config = load_suite("quick", ["train.lr=1", "train.milestones=[]", "train.augment=false", "seeds=[0, 7]"])
    assert config.train.lr == 1 and config.train.milestones == () and config.seeds == (0, 7)


def test_dataset_args_reach_the_data_set_and_are_checked_against_it() -> None:
    config = suite_from_dict(minimal_suite(dataset="imagefolder:/data/x",
                                           dataset_args={"display_name": "CIFAR-10 (JPEG copy)"}))
    assert config.dataset_args == {"display_name": "CIFAR-10 (JPEG copy)"}
    with pytest.raises(SuiteError, match=r"bad 'dataset_args' for data set 'imagefolder'.*accepts display_name, notes"):
        suite_from_dict(minimal_suite(dataset="imagefolder:/data/x", dataset_args={"name": "x"}))
    with pytest.raises(SuiteError, match="bad 'dataset_args' for data set 'mnist5k'.*accepts none"):
        suite_from_dict(minimal_suite(dataset_args={"display_name": "digits"}))
