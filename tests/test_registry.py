"""Registries: decorator registration, listing, helpful errors, plug-ins and entry points."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from robustbench_win import registry as registry_module
from robustbench_win.registry import (
    DATASETS,
    MODELS,
    PluginError,
    Registry,
    UnknownNameError,
    load_plugin,
    register_model,
)


@pytest.fixture
def no_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Installed packages contribute nothing; records the groups that were asked for."""
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[Any]:
        asked.append(group)
        return []

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    return asked


@pytest.fixture
def cnn_registry(no_entry_points: list[str]) -> Registry[Any]:
    """A fresh models registry holding three small factories."""
    fresh: Registry[Any] = Registry("models")

    @fresh.register("paper-cnn")
    def paper_cnn(*, width: int = 16, depth: int = 4) -> tuple[int, int]:
        """The paper's CNN.

        More text that describe() must not return.
        """
        return width, depth

    @fresh.register("paper-cnn-small")
    def paper_cnn_small(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    @fresh.register("resnet18")
    def resnet18() -> str:
        """ResNet-18."""
        return "resnet"

    return fresh


@pytest.fixture
def clean_global_models() -> Iterator[list[str]]:
    """Names to remove from the global MODELS registry (and plug-in modules) after a test."""
    names: list[str] = []
    modules_before = set(sys.modules)
    yield names
    for name in names:
        MODELS._entries.pop(name, None)
    for module in set(sys.modules) - modules_before:
        if module.startswith(("robustbench_win_plugin_", "rbw_test_plugin")):
            del sys.modules[module]


# --------------------------------------------------------------------------- registration and lookup


def test_decorator_registers_and_returns_the_factory(cnn_registry: Registry[Any]) -> None:
    def factory() -> int:
        return 42

    returned = cnn_registry.register("answer")(factory)
    assert returned is factory
    assert cnn_registry.get("answer") is factory
    assert "answer" in cnn_registry
    assert cnn_registry.create("answer") == 42


def test_names_are_sorted_and_filtered_by_wildcard(cnn_registry: Registry[Any]) -> None:
    assert cnn_registry.names() == ["paper-cnn", "paper-cnn-small", "resnet18"]
    assert cnn_registry.names("paper-*") == ["paper-cnn", "paper-cnn-small"]
    assert cnn_registry.names("*18") == ["resnet18"]
    assert cnn_registry.names("paper-cnn") == ["paper-cnn"]
    assert cnn_registry.names("vgg*") == []
    assert list(cnn_registry) == cnn_registry.names()


def test_duplicate_name_raises_unless_overwrite(cnn_registry: Registry[Any]) -> None:
    def other() -> None:
        return None

    with pytest.raises(ValueError, match=r"already has an entry named 'resnet18'.*overwrite=True"):
        cnn_registry.register("resnet18")(other)
    assert cnn_registry.create("resnet18") == "resnet"  # the first one is kept
    cnn_registry.register("resnet18", overwrite=True)(other)
    assert cnn_registry.get("resnet18") is other


def test_registering_the_same_factory_twice_is_harmless(cnn_registry: Registry[Any]) -> None:
    factory = cnn_registry.get("resnet18")
    cnn_registry.register("resnet18")(factory)
    assert cnn_registry.get("resnet18") is factory


def test_unknown_name_lists_close_matches_and_available_names(cnn_registry: Registry[Any]) -> None:
    with pytest.raises(UnknownNameError) as info:
        cnn_registry.get("paper-cn")
    message = str(info.value)
    assert "unknown model 'paper-cn'" in message
    assert "Did you mean 'paper-cnn'" in message
    assert "Available: paper-cnn, paper-cnn-small, resnet18" in message
    assert "--plugin" in message
    assert isinstance(info.value, KeyError)  # callers catching KeyError still work


def test_unknown_name_without_close_match(cnn_registry: Registry[Any]) -> None:
    with pytest.raises(UnknownNameError) as info:
        cnn_registry.create("transformer")
    assert "Did you mean" not in str(info.value)
    assert "Available: paper-cnn, paper-cnn-small, resnet18" in str(info.value)


def test_global_registry_suggests_close_matches() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean 'resnet18'"):
        MODELS.get("resnet-18")
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'mnist5'.*'mnist5k'"):
        DATASETS.get("mnist5")


def test_create_drops_none_kwargs(cnn_registry: Registry[Any]) -> None:
    assert cnn_registry.create("paper-cnn", width=None, depth=None) == (16, 4)
    assert cnn_registry.create("paper-cnn", width=None, depth=6) == (16, 6)
    assert cnn_registry.create("paper-cnn", width=0, depth=None) == (0, 4)  # falsy but not None: kept
    assert cnn_registry.create("paper-cnn-small", a=None, b=False, c=0) == {"b": False, "c": 0}


def test_describe_is_the_first_docstring_line(cnn_registry: Registry[Any]) -> None:
    assert cnn_registry.describe("paper-cnn") == "The paper's CNN."
    assert cnn_registry.describe("paper-cnn-small") == ""
    assert MODELS.describe("paper-cnn").startswith("The paper's CNN")


def test_builtin_models_are_registered() -> None:
    assert {"paper-cnn", "paper-cnn-small", "resnet18"} <= set(MODELS.names())
    assert {"mnist5k", "mnist5k-14", "cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder"} <= set(DATASETS.names())


# --------------------------------------------------------------------------- plug-ins


PLUGIN_SOURCE = textwrap.dedent(
    """
    from robustbench_win.registry import register_model

    CALLS = []

    @register_model("{name}")
    def tiny(**kwargs):
        \"\"\"A plug-in model.\"\"\"
        CALLS.append(kwargs)
        return "{name}-built"
    """
)


def test_load_plugin_from_py_file(tmp_path: Path, clean_global_models: list[str]) -> None:
    name = "rbw-test-file-plugin"
    clean_global_models.append(name)
    plugin = tmp_path / "my_models.py"
    plugin.write_text(PLUGIN_SOURCE.format(name=name))
    assert name not in MODELS
    load_plugin(str(plugin))
    assert name in MODELS
    assert MODELS.create(name, in_channels=1, num_classes=10, window=None) == f"{name}-built"
    assert MODELS.describe(name) == "A plug-in model."
    # Loading the same file again (a second CLI call in one process) is harmless.
    load_plugin(str(plugin))
    assert MODELS.create(name) == f"{name}-built"


def test_load_plugin_by_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    clean_global_models: list[str]) -> None:
    name = "rbw-test-module-plugin"
    clean_global_models.append(name)
    (tmp_path / "rbw_test_plugin_module.py").write_text(PLUGIN_SOURCE.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugin("rbw_test_plugin_module")
    assert MODELS.create(name) == f"{name}-built"
    load_plugin("rbw_test_plugin_module")  # already imported: a no-op


def test_plugin_file_that_fails_can_be_fixed_and_reloaded(tmp_path: Path, clean_global_models: list[str]) -> None:
    name = "rbw-test-broken-plugin"
    clean_global_models.append(name)
    plugin = tmp_path / "broken_models.py"
    plugin.write_text("raise RuntimeError('broken plugin')\n")
    with pytest.raises(PluginError, match="broken_models.py' failed at import: RuntimeError: broken plugin"):
        load_plugin(str(plugin))
    plugin.write_text(PLUGIN_SOURCE.format(name=name))
    load_plugin(str(plugin))
    assert name in MODELS


@pytest.mark.parametrize("spec", ["no_such_plugin_file.py", "no_such_plugin_module_xyz", "robustbench_win.models.no_such_submodule"])
def test_missing_plugin_raises_plugin_error(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PluginError, match=spec.replace(".", r"\.")) as info:
        load_plugin(spec)
    assert isinstance(info.value, ImportError)
    assert ".py" in str(info.value)  # says what to pass instead


# --------------------------------------------------------------------------- entry points


class FakeEntryPoint:
    """Stands in for ``importlib.metadata.EntryPoint``: ``load()`` imports (here: runs) a target."""

    def __init__(self, load: Any) -> None:
        self._load = load
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        return self._load()


def test_entry_point_module_registers_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh: Registry[Any] = Registry("models")

    def import_module() -> types.ModuleType:
        # Importing a plug-in module runs its @register decorators.
        fresh.register("third-party-cnn")(lambda **kwargs: "third-party")
        return types.ModuleType("third_party_models")

    point = FakeEntryPoint(import_module)
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        asked.append(group)
        return [point] if group == "robustbench_win.models" else []

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    assert fresh.names() == ["third-party-cnn"]
    assert asked == ["robustbench_win.models"]
    assert fresh.create("third-party-cnn", width=None) == "third-party"
    fresh.names()
    assert point.loads == 1  # entry points are loaded once


def test_entry_point_callable_is_called_to_register(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh: Registry[Any] = Registry("attacks")
    calls: list[str] = []

    def register_all() -> None:
        calls.append("called")
        fresh.register("third-party-attack")(lambda **kwargs: "attack")

    monkeypatch.setattr(registry_module, "entry_points",
                        lambda *, group: [FakeEntryPoint(lambda: register_all)] if group == "robustbench_win.attacks" else [])
    assert "third-party-attack" in fresh
    assert calls == ["called"]


def test_global_registrations_by_decorator(clean_global_models: list[str]) -> None:
    name = "rbw-test-decorated"
    clean_global_models.append(name)

    @register_model(name)
    def decorated(**kwargs: Any) -> str:
        return "decorated"

    assert MODELS.get(name) is decorated
    assert name in MODELS.names("rbw-test-*")


# --------------------------------------------------------------------------- plug-ins that raise at import

BROKEN_PLUGIN = """\
import os


def read_settings():
    raise KeyError("MY_MODELS_HOME is not set")


SETTINGS = read_settings()
"""


def frame_files(details: str) -> set[str]:
    return {line.split('"')[1] for line in details.splitlines() if line.strip().startswith('File "')}


def test_a_plugin_file_that_raises_names_itself_and_shows_only_its_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from robustbench_win.cli import main

    plugin = tmp_path / "my_settings_models.py"
    plugin.write_text(BROKEN_PLUGIN)
    assert main(["--plugin", str(plugin), "list", "models"]) == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert first == (f"robustbench-win: error: plugin file '{plugin}' failed at import: "
                     f"KeyError: 'MY_MODELS_HOME is not set'")
    assert frame_files("\n".join(rest)) == {str(plugin)}  # no importlib or robustbench_win frames
    assert "line 5, in read_settings" in err and "line 8, in <module>" in err


def test_a_plugin_module_with_a_missing_dependency_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              clean_global_models: list[str]) -> None:
    (tmp_path / "rbw_test_plugin_needs_dep.py").write_text("import rbw_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin module 'rbw_test_plugin_needs_dep' failed at import: "
                                          "ModuleNotFoundError: No module named 'rbw_no_such_dependency'") as info:
        load_plugin("rbw_test_plugin_needs_dep")
    assert frame_files(info.value.details) == {str(tmp_path / "rbw_test_plugin_needs_dep.py")}


def install_distribution(root: Path, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution under ``root`` (its ``.dist-info`` and modules)."""
    info = root / "rbw_test_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rbw-test-dist\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[robustbench_win.models]\n{lines}\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)


def test_an_entry_point_that_raises_leaves_the_others_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             clean_global_models: list[str]) -> None:
    good = ("from robustbench_win.registry import MODELS\n"
            "MODELS.register('rbw-ep-good')(lambda **kwargs: 'good')\n")
    install_distribution(tmp_path, {"broken": "rbw_test_plugin_broken_ep", "good": "rbw_test_plugin_good_ep"},
                         {"rbw_test_plugin_broken_ep": BROKEN_PLUGIN, "rbw_test_plugin_good_ep": good})
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh: Registry[Any] = Registry("models")
    monkeypatch.setattr(registry_module, "MODELS", fresh)  # the good plug-in registers here
    with pytest.raises(PluginError, match=r"entry point 'broken = rbw_test_plugin_broken_ep' \(group "
                                          r"robustbench_win.models\) failed at import: KeyError") as info:
        fresh.names()
    assert frame_files(info.value.details) == {str(tmp_path / "rbw_test_plugin_broken_ep.py")}
    assert "rbw-ep-good" in fresh.names()  # loaded all the same: the registry is not half-loaded
