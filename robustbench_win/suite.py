"""Suite configuration: what to train, attack and compare, read from TOML and validated up front.

A suite file (see ``robustbench_win/suites/*.toml``)::

    name = "quick"
    dataset = "mnist5k"
    kernel_sizes = [3, 5, 7, 9, 11]
    windows = ["none", "hamming"]
    seeds = [0]
    attack_samples = 100

    [model]
    name = "paper-cnn"
    args = { depth = 3, width = 16 }

    [train]
    epochs = 6

    [[attacks]]
    name = "deepfool"

Every key is checked before any work starts: an unknown key names the known ones, and a bad
value (a kernel size of 4, an unknown window, attack or model, a negative learning rate)
raises :class:`SuiteError` saying what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from robustbench_win.conventions import CHECK_NAMES, DEFAULT_RADII
from robustbench_win.errors import BadValueError
from robustbench_win.models.windows import WINDOWS, check_kernel_size, check_window
from robustbench_win.registry import ATTACKS, DATASETS, MODELS, UnknownNameError
from robustbench_win.train.config import TrainConfig

DEFAULT_SUITE = "quick"

TOP_LEVEL_KEYS = {
    "name": "suite name, used for the default output folder reports/<name>",
    "description": "one line saying what the suite is for",
    "dataset": "data set name or imagefolder:PATH",
    "dataset_args": "table: the data set's own arguments, e.g. { display_name = \"CIFAR-10 (JPEG copy)\" }",
    "train_size": "stratified training subset (omit for the whole split)",
    "test_size": "stratified test subset for clean accuracy (omit for the whole split)",
    "attack_samples": "number of test images attacked, the same ones for every model",
    "kernel_sizes": "odd kernel sizes, e.g. [3, 5, 7, 9, 11]",
    "windows": f"windows to compare, from {', '.join(WINDOWS)}",
    "seeds": "training seeds, integers >= 0; several give mean +- std",
    "notes": "what the report should say about this suite (e.g. reductions from the paper)",
    "device": "auto, cpu or cuda",
    "model": "table: name (registry), args (factory arguments) and param_match (true: scale each model's width "
             "to the parameter count of its k = 3 model)",
    "train": "table: training configuration",
    "attacks": "array of tables: name (registry) and the attack's parameters",
    "report": "table: radii (L2 radii for robust accuracy)",
    "checks": "table: the sanity checks run on every model (enabled = false switches all off; a check's name "
              "= false switches that one off, e.g. { cross-check = false }); the report says which are off",
    "weights": "evaluate models trained elsewhere instead of training: a state-dict file per model, as a "
               "pattern such as \"weights/k{kernel_size}_{window}_s{seed}.pt\" (relative to the current folder)",
}
WEIGHTS_FIELDS = ("kernel_size", "window", "seed")  # the placeholders a weights pattern may use
MODEL_KEYS = {"name", "args", "param_match"}
REPORT_KEYS = {"radii"}
CHECK_KEYS = {"enabled", *CHECK_NAMES}  # the sanity checks of robustbench_win.measure.checks, by name
TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}


class SuiteError(BadValueError):
    """A suite file or override is invalid; the message names the key and what was expected."""


@dataclass(frozen=True)
class AttackSpec:
    """One attack of a suite: registry name and keyword parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteConfig:
    """A validated suite. Build with :func:`load_suite` or :func:`suite_from_dict`."""

    name: str
    dataset: str
    kernel_sizes: tuple[int, ...]
    windows: tuple[str, ...]
    seeds: tuple[int, ...]
    model: str
    model_args: dict[str, Any]
    train: TrainConfig
    attacks: tuple[AttackSpec, ...]
    attack_samples: int = 100
    dataset_args: dict[str, Any] = field(default_factory=dict)
    train_size: int | None = None
    test_size: int | None = None
    radii: tuple[float, ...] = DEFAULT_RADII
    notes: tuple[str, ...] = ()
    description: str = ""
    device: str = "auto"
    weights: str | None = None
    param_match: bool = False
    checks_off: tuple[str, ...] = ()  # sanity checks switched off in [checks] (all of CHECK_NAMES: enabled = false)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def check_enabled(self, name: str) -> bool:
        """Whether the sanity check ``name`` runs (every check does unless [checks] says otherwise)."""
        return name not in self.checks_off

    def to_toml(self) -> str:
        """The resolved configuration as TOML (what the run folder stores as ``suite.toml``)."""
        return dump_toml(self.raw)


def shipped_suites() -> dict[str, Path]:
    """Preset name -> path of the TOML files shipped in ``robustbench_win/suites``."""
    folder = resources.files("robustbench_win.suites")
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def load_suite(name_or_path: str, overrides: list[str] | None = None) -> SuiteConfig:
    """Read a shipped preset by name, or a TOML file by path, and apply ``--set`` overrides.

    Raises:
        SuiteError: Unknown preset, unreadable TOML, unknown key or bad value.
    """
    presets = shipped_suites()
    path = Path(name_or_path)
    if name_or_path in presets:
        path = presets[name_or_path]
    elif not path.is_file():
        close = difflib.get_close_matches(name_or_path, list(presets), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SuiteError(
            f"no suite named '{name_or_path}' and no such file.{hint} "
            f"Presets: {', '.join(sorted(presets))}; or pass the path of a .toml file"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(f"{path} is not valid TOML: {error}") from error
    raw.setdefault("name", path.stem)
    for override in overrides or []:
        apply_override(raw, override)
    return suite_from_dict(raw, source=str(path))


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``key=value`` (dotted key; value parsed as TOML, else taken as a string)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise SuiteError(f"--set expects KEY=VALUE (e.g. train.epochs=3), got '{override}'")
    parts = key.strip().split(".")
    if parts[0] == "attacks" and len(parts) > 1:
        raise SuiteError("attacks is a list: override it whole, e.g. --set 'attacks=[{name=\"deepfool\"}]'")
    value = parse_value(text.strip())
    target = raw
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise SuiteError(f"--set {key}: '{part}' is not a table")
    target[parts[-1]] = value


def parse_value(text: str) -> Any:
    """Parse a command-line value as TOML (``3``, ``[3, 5]``, ``true``), else keep the string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text  # bare words such as mnist5k-14 need no quotes


def suite_from_dict(raw: dict[str, Any], source: str = "suite") -> SuiteConfig:
    """Validate a parsed suite dictionary and build a :class:`SuiteConfig`.

    Raises:
        SuiteError: The first problem found, naming the key.
    """
    raw = copy.deepcopy(raw)
    _reject_unknown(raw, TOP_LEVEL_KEYS, source, "")
    for required in ("dataset", "kernel_sizes", "model"):
        if required not in raw:
            raise SuiteError(f"{source}: missing required key '{required}' ({TOP_LEVEL_KEYS[required]})")
    model = _table(raw, "model", source)
    _reject_unknown(model, MODEL_KEYS, source, "model.")
    train_raw = _table(raw, "train", source)
    _reject_unknown(train_raw, TRAIN_KEYS, source, "train.")
    report = _table(raw, "report", source)
    _reject_unknown(report, REPORT_KEYS, source, "report.")
    checks = _table(raw, "checks", source)
    _reject_unknown(checks, CHECK_KEYS, source, "checks.")
    config = SuiteConfig(
        name=_get(raw, "name", str, source),
        dataset=_dataset(raw, source),
        dataset_args=_dataset_args(raw, source),
        kernel_sizes=tuple(_each(raw, "kernel_sizes", _kernel_size, source)),
        windows=tuple(_each(raw, "windows", _window, source, default=["none", "hamming"])),
        seeds=tuple(_each(raw, "seeds", _seed, source, default=[0])),
        model=_model_name(model, source),
        model_args=dict(_table(model, "args", source, "model.")),
        train=_train_config(train_raw, source),
        attacks=tuple(_attack(entry, source) for entry in _list(raw, "attacks", source, default=[])),
        attack_samples=_positive_int(raw.get("attack_samples", 100), "attack_samples", source),
        train_size=_optional_positive_int(raw, "train_size", source),
        test_size=_optional_positive_int(raw, "test_size", source),
        radii=tuple(_each(report, "radii", _radius, source, default=list(DEFAULT_RADII), prefix="report.")),
        notes=tuple(str(n) for n in _list(raw, "notes", source, default=[])),
        description=str(raw.get("description", "")),
        device=_device(raw.get("device", "auto"), source),
        weights=raw.get("weights"),
        param_match=_bool(model, "param_match", source, "model."),
        checks_off=_checks_off(checks, source),
        raw=raw,
    )
    _check_models_build(config, source)
    _check_weights(config, source)
    return config


def weights_path(config: SuiteConfig, *, kernel_size: int, window: str, seed: int) -> Path | None:
    """The weights file of one model of a suite that names them; ``None`` when the suite trains its models."""
    if config.weights is None:
        return None
    return Path(config.weights.format(kernel_size=kernel_size, window=window, seed=seed))


def _check_weights(config: SuiteConfig, source: str) -> None:
    """A weights pattern uses only known placeholders, names one file per model, and every file exists."""
    if config.weights is None:
        return
    if not isinstance(config.weights, str) or not config.weights.strip():
        raise SuiteError(f"{source}: 'weights' must be a file pattern such as \"weights/k{{kernel_size}}_{{window}}"
                         f"_s{{seed}}.pt\", got {config.weights!r}")
    try:
        paths = {(k, w, s): weights_path(config, kernel_size=k, window=w, seed=s)
                 for k in config.kernel_sizes for w in config.windows for s in config.seeds}
    except (KeyError, IndexError, ValueError) as error:
        raise SuiteError(f"{source}: bad 'weights' pattern {config.weights!r} ({type(error).__name__}: {error}); "
                         f"it may use {', '.join('{' + f + '}' for f in WEIGHTS_FIELDS)}") from None
    if len(set(paths.values())) < len(paths):
        raise SuiteError(f"{source}: the 'weights' pattern {config.weights!r} names the same file for several models; "
                         f"use {', '.join('{' + f + '}' for f in WEIGHTS_FIELDS)} to give each its own")
    missing = [f"{p} (k={k}, {w}, seed {s})" for (k, w, s), p in paths.items() if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise SuiteError(f"{source}: 'weights' names files that do not exist: {'; '.join(missing[:3])}{more} "
                         f"(paths are relative to the current folder, {Path.cwd()})")


def _reject_unknown(table: dict[str, Any], known: Any, source: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise SuiteError(f"{source}: unknown key '{prefix}{key}'{hint}; known keys: {', '.join(sorted(known))}")


def _table(raw: dict[str, Any], key: str, source: str, prefix: str = "") -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SuiteError(f"{source}: '{prefix}{key}' must be a table, got {value!r}")
    return value


def _list(raw: dict[str, Any], key: str, source: str, default: list[Any]) -> list[Any]:
    value = raw.get(key, default)
    if not isinstance(value, list):
        raise SuiteError(f"{source}: '{key}' must be a list, got {value!r}")
    return value


def _each(raw: dict[str, Any], key: str, check: Any, source: str, default: list[Any] | None = None, prefix: str = "") -> list[Any]:
    values = raw.get(key, default)
    if not isinstance(values, list) or not values:
        raise SuiteError(f"{source}: '{prefix}{key}' must be a non-empty list, got {values!r}")
    try:
        return [check(v) for v in values]
    except (ValueError, TypeError) as error:
        raise SuiteError(f"{source}: bad value in '{prefix}{key}': {error}") from error


def _get(raw: dict[str, Any], key: str, kind: type, source: str) -> Any:
    value = raw[key]
    if not isinstance(value, kind):
        raise SuiteError(f"{source}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _seed(value: Any) -> int:
    if _int(value) < 0:
        raise ValueError(f"seeds must be integers >= 0, got {value}")
    return value


def _kernel_size(value: Any) -> int:
    return check_kernel_size(value)


def _window(value: Any) -> str:
    return check_window(value)


def _radius(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"radii must be positive numbers, got {value!r}")
    return float(value)


def _positive_int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SuiteError(f"{source}: '{key}' must be an integer >= 1, got {value!r}")
    return value


def _optional_positive_int(raw: dict[str, Any], key: str, source: str) -> int | None:
    return None if raw.get(key) is None else _positive_int(raw[key], key, source)


def _bool(table: dict[str, Any], key: str, source: str, prefix: str = "") -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise SuiteError(f"{source}: '{prefix}{key}' must be true or false, got {value!r}")
    return value


def _checks_off(checks: dict[str, Any], source: str) -> tuple[str, ...]:
    """The checks a [checks] table switches off (every one with ``enabled = false``)."""
    switched = {key: _bool(checks | {key: checks.get(key, True)}, key, source, "checks.") for key in CHECK_KEYS}
    if not switched["enabled"]:
        return CHECK_NAMES
    return tuple(name for name in CHECK_NAMES if not switched[name])


def _device(value: Any, source: str) -> str:
    if not isinstance(value, str) or not (value in ("auto", "cpu") or value.startswith("cuda")):
        raise SuiteError(f"{source}: 'device' must be auto, cpu or cuda[:N], got {value!r}")
    return value


def _dataset(raw: dict[str, Any], source: str) -> str:
    spec = _get(raw, "dataset", str, source)
    name = spec.partition(":")[0]
    if name not in DATASETS:
        raise SuiteError(f"{source}: {UnknownNameError(DATASETS._unknown_message(name))}")
    return spec


def _dataset_args(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """The data set's own arguments, checked against its factory's signature."""
    args = dict(_table(raw, "dataset_args", source))
    name, _, path = raw["dataset"].partition(":")
    factory = DATASETS.get(name)
    try:
        inspect.signature(factory).bind(**args, **({"path": path} if path else {}))
    except TypeError as error:
        accepted = [p for p in inspect.signature(factory).parameters if p not in ("path", "data_dir", "download")]
        raise SuiteError(f"{source}: bad 'dataset_args' for data set '{name}' ({error}); it accepts "
                         f"{', '.join(accepted) or 'none'}") from None
    return args


def _model_name(model: dict[str, Any], source: str) -> str:
    name = model.get("name")
    if not isinstance(name, str):
        raise SuiteError(f"{source}: 'model.name' must name a registered model, e.g. paper-cnn")
    if name not in MODELS:
        raise SuiteError(f"{source}: {MODELS._unknown_message(name)}")
    return name


def _train_config(values: dict[str, Any], source: str) -> TrainConfig:
    hints = typing.get_type_hints(TrainConfig)
    for key, value in values.items():
        if not _has_type(value, hints[key]):
            raise SuiteError(f"{source}: 'train.{key}' must be {_type_name(hints[key])}, got {value!r} "
                             f"({type(value).__name__}); for example --set train.{key}={_example(hints[key])}")
    try:
        return TrainConfig(**values)
    except (ValueError, TypeError) as error:
        raise SuiteError(f"{source}: bad value in [train]: {error}") from error


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field annotation (int, float, bool, str, Literal, tuple[X, ...], unions)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (tuple, list):
        return isinstance(value, list) and all(_has_type(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return hint is type(None) and value is None or isinstance(hint, type) and isinstance(value, hint)


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _example(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _example(args[0])
    if origin is Literal:
        return str(args[0])
    if origin in (tuple, list):
        return f"[{_example(args[0])}]"
    return {int: "3", float: "0.05", bool: "true", str: "text"}.get(hint, "...")


def _attack(entry: Any, source: str) -> AttackSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise SuiteError(f"{source}: each [[attacks]] entry needs a name, e.g. {{ name = \"deepfool\" }}; got {entry!r}")
    params = {k: v for k, v in entry.items() if k != "name"}
    if entry["name"] not in ATTACKS:
        raise SuiteError(f"{source}: {ATTACKS._unknown_message(entry['name'])}")
    try:
        ATTACKS.create(entry["name"], **params)  # validates parameters now, not mid-run
    except (ValueError, TypeError) as error:
        raise SuiteError(f"{source}: bad parameters for attack '{entry['name']}': {error}") from error
    return AttackSpec(entry["name"], params)


def _check_models_build(config: SuiteConfig, source: str) -> None:
    """Instantiate each (kernel size, window) once, so bad model arguments fail before training."""
    for kernel_size in config.kernel_sizes:
        for window in config.windows:
            try:
                MODELS.create(config.model, in_channels=1, num_classes=2, kernel_size=kernel_size, window=window, **config.model_args)
            except (ValueError, TypeError) as error:
                raise SuiteError(f"{source}: model '{config.model}' rejects its arguments {config.model_args} at k={kernel_size}, window={window}: {error}") from error


def dump_toml(data: dict[str, Any]) -> str:
    """Write a suite dictionary as TOML (scalars first, then tables, then arrays of tables)."""
    lines: list[str] = []
    _dump_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines.extend(["", f"[{'.'.join(_key(p) for p in [*path, key])}]"])
            _dump_table(value, [*path, key], lines)
    for key, value in table.items():
        if _is_table_array(value):
            for item in value:
                lines.extend(["", f"[[{'.'.join(_key(p) for p in [*path, key])}]]"])
                _dump_table(item, [*path, key], lines)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def weights_suite(*, model: str, weights: Path | str, dataset: str, attacks: list[str],
                  model_args: dict[str, Any] | None = None, attack_samples: int = 100,
                  radii: tuple[float, ...] = DEFAULT_RADII) -> SuiteConfig:
    """A one-model suite that evaluates a model trained elsewhere (``robustbench-win attack``).

    Args:
        model: Registered model name.
        weights: Its state-dict file.
        dataset: Registered data set name (or ``imagefolder:PATH``).
        attacks: Registered attack names, run with their defaults.
        model_args: The model's arguments; ``kernel_size`` (default 3) and ``window`` (default
            "none") label its records.
        attack_samples: Test images attacked.
        radii: L2 radii for robust accuracy.

    Raises:
        SuiteError: As :func:`suite_from_dict`, e.g. a missing weights file or an unknown attack.
    """
    args = dict(model_args or {})
    kernel_size, window = args.pop("kernel_size", 3), args.pop("window", "none")
    path = Path(weights)
    raw = {
        "name": f"attack-{path.stem}", "description": f"{model} with weights from {path}, trained elsewhere",
        "dataset": dataset, "kernel_sizes": [kernel_size], "windows": [window], "seeds": [0],
        "attack_samples": attack_samples, "weights": str(path.absolute()),
        "notes": [f"weights loaded from {path} (trained elsewhere, not by this suite); seed 0 is a label only"],
        "model": {"name": model, "args": args}, "attacks": [{"name": name} for name in attacks],
        "report": {"radii": list(radii)},
    }
    return suite_from_dict(raw, source="robustbench-win attack")

