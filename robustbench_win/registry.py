"""Name -> factory registries for models, data sets and attacks.

A factory is registered with a decorator::

    from robustbench_win.registry import register_model

    @register_model("my-cnn")
    def my_cnn(*, in_channels: int, num_classes: int, kernel_size: int = 3, window: str = "none"):
        ...

Built-in entries live in :mod:`robustbench_win.models.zoo`, :mod:`robustbench_win.attacks.zoo`
and :mod:`robustbench_win.data.datasets`; they are imported the first time a registry is read,
never at package import. Third-party packages register through the entry-point groups
``robustbench_win.models``, ``robustbench_win.datasets`` and ``robustbench_win.attacks`` (the
registry's kind after :data:`ENTRY_POINT_PREFIX`): each entry point names a module (or a
callable) whose import registers its factories.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from robustbench_win.errors import BadValueError, UserError

Factory = TypeVar("Factory", bound=Callable[..., Any])

ENTRY_POINT_PREFIX = "robustbench_win."

# Modules whose import registers the built-in entries of each registry.
_BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "models": ("robustbench_win.models.zoo",),
    "datasets": ("robustbench_win.data.datasets",),
    "attacks": ("robustbench_win.attacks.zoo",),
}


class UnknownNameError(UserError, KeyError):
    """Raised when a registry has no entry of the requested name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class MissingLibraryError(UnknownNameError):
    """A name routed to an optional library (``timm:NAME``) that is not installed."""


class PluginError(UserError, ImportError):
    """A ``--plugin`` module or file, or an entry point, cannot be imported.

    Attributes:
        details: The plug-in's own traceback frames (empty when there are none), to print
            after the one-line message.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Registry(Generic[Factory]):
    """A mapping from names to factories of one kind (models, data sets or attacks).

    Args:
        kind: What the registry holds, e.g. ``"models"``; used in messages and to find the
            built-in modules and the entry-point group ``robustbench_win.<kind>``.
    """

    kind: str
    _entries: dict[str, Factory] = field(default_factory=dict)
    _routes: dict[str, Callable[[str], Factory]] = field(default_factory=dict)
    _loaded: bool = False

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[Factory], Factory]:
        """Decorator registering ``factory`` under ``name``.

        Args:
            name: Registry key. Lower case with dashes by convention (``"paper-cnn"``).
            overwrite: Replace an existing entry instead of raising ``ValueError``.
        """

        def decorator(factory: Factory) -> Factory:
            existing = self._entries.get(name)
            if existing is not None and existing is not factory and not overwrite:
                raise BadValueError(
                    f"{self.kind} registry already has an entry named '{name}' "
                    f"({_qualname(existing)}); choose another name or pass overwrite=True"
                )
            self._entries[name] = factory
            return factory

        return decorator

    def register_route(self, prefix: str) -> Callable[[Callable[[str], Factory]], Callable[[str], Factory]]:
        """Decorator registering a resolver for names ``PREFIX:NAME`` (e.g. ``torchvision:resnet18``).

        The resolver receives ``NAME`` and returns a factory, or raises
        :class:`UnknownNameError` (or :class:`MissingLibraryError`) with a message saying what to
        do. Routed names are not listed by :meth:`names`: they come from another library.
        """

        def decorator(resolver: Callable[[str], Factory]) -> Callable[[str], Factory]:
            if self._routes.get(prefix, resolver) is not resolver:
                raise BadValueError(f"{self.kind} registry already has a route for '{prefix}:NAME'")
            self._routes[prefix] = resolver
            return resolver

        return decorator

    def routes(self) -> list[str]:
        """The prefixes of routed names, e.g. ``["timm", "torchvision"]``."""
        self._load_builtins()
        return sorted(self._routes)

    def get(self, name: str) -> Factory:
        """Return the factory registered as ``name``, or the one a route resolves ``PREFIX:NAME`` to.

        Raises:
            UnknownNameError: No such name; the message lists close matches and all names
                (for a routed name: the route's own message).
        """
        self._load_builtins()
        if name in self._entries:
            return self._entries[name]
        prefix, colon, rest = name.partition(":")
        if colon and prefix in self._routes:
            return self._routes[prefix](rest)
        raise UnknownNameError(self._unknown_message(name))

    def create(self, name: str, **kwargs: Any) -> Any:
        """Call the factory ``name`` with ``kwargs``, dropping those whose value is ``None``.

        Dropping ``None`` lets a CLI pass every flag through: a flag the user did not give
        never overrides the factory's default.
        """
        factory = self.get(name)
        return factory(**{key: value for key, value in kwargs.items() if value is not None})

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the shell-style wildcard ``pattern`` (e.g. ``"paper-*"``)."""
        self._load_builtins()
        return sorted(name for name in self._entries if fnmatch.fnmatchcase(name, pattern))

    def in_registration_order(self) -> list[str]:
        """Every name in the order it was registered: built-ins as their modules list them, then plug-ins."""
        self._load_builtins()
        return list(self._entries)

    def describe(self, name: str) -> str:
        """First line of the factory's docstring, or an empty string."""
        doc = (self.get(name).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _unknown_message(self, name: str) -> str:
        prefix, colon, rest = name.partition(":")
        if colon and prefix in self._routes:
            try:
                self._routes[prefix](rest)
            except UnknownNameError as error:
                return str(error)
        available = self.names()
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} '{name}'.{hint} "
            f"Available: {', '.join(available) or '(none)'}"
            f"{''.join(f', {route}:NAME' for route in sorted(self._routes))}. "
            f"Register your own with @register_{self.kind.rstrip('s')}(...) and load it with "
            f"--plugin MODULE_OR_FILE."
        )

    def _load_builtins(self) -> None:
        """Import the built-in entries, then every installed entry point of this kind.

        Raises:
            PluginError: An entry point failed at import (the others are loaded all the same).
        """
        if self._loaded:
            return
        self._loaded = True  # set first: the imports below call back into this registry
        for module in _BUILTIN_MODULES.get(self.kind, ()):
            importlib.import_module(module)
        failures = []
        for entry_point in entry_points(group=ENTRY_POINT_PREFIX + self.kind):
            try:
                loaded = entry_point.load()
                if callable(loaded) and not isinstance(loaded, type(sys)):
                    loaded()
            except Exception as error:  # the other plug-ins still load; the first failure is raised
                name = f"entry point '{entry_point.name} = {entry_point.value}' (group {entry_point.group})"
                failures.append(plugin_failure(name, error, _module_roots(entry_point.module)))
        if failures:
            raise failures[0]


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS: Registry[Callable[..., Any]] = Registry("models")
DATASETS: Registry[Callable[..., Any]] = Registry("datasets")
ATTACKS: Registry[Callable[..., Any]] = Registry("attacks")

register_model = MODELS.register
register_dataset = DATASETS.register
register_attack = ATTACKS.register


def load_plugin(spec: str) -> None:
    """Import a user's module by dotted name or a ``.py`` file by path, so it can register.

    Raises:
        PluginError: The file does not exist, the module cannot be found, or the plug-in
            raised while it was imported (the message names it and the error; ``details``
            holds the plug-in's own frames).
    """
    if spec.endswith(".py"):
        _load_plugin_file(spec)
        return
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name is None or not (spec == error.name or spec.startswith(f"{error.name}.")):
            raise plugin_failure(f"plugin module '{spec}'", error, _module_roots(spec)) from error
        raise PluginError(
            f"cannot import plugin module '{spec}' ({error}); pass an importable module name "
            f"or the path of a .py file"
        ) from error
    except Exception as error:
        raise plugin_failure(f"plugin module '{spec}'", error, _module_roots(spec)) from error


def _load_plugin_file(spec: str) -> None:
    path = Path(spec)
    if not path.is_file():
        raise PluginError(f"plugin file '{spec}' does not exist; pass a .py path or a module name")
    path = path.resolve()
    module_name = f"robustbench_win_plugin_{path.stem}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return  # imported already, like a module name: running it again would register twice
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"cannot import plugin file '{spec}'")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]  # a fixed file can then be loaded again
        raise plugin_failure(f"plugin file '{spec}'", error, [str(path)]) from error


def plugin_failure(name: str, error: BaseException, roots: list[str]) -> PluginError:
    """A :class:`PluginError` for a plug-in that raised at import, with its own frames only.

    Args:
        name: How to name the plug-in, e.g. ``"plugin file 'my_models.py'"``.
        error: What it raised.
        roots: Files or folders holding the plug-in's code; frames elsewhere (importlib, this
            package, libraries it calls) are left out.
    """
    frames = [f for f in traceback.extract_tb(error.__traceback__) if any(f.filename.startswith(r) for r in roots)]
    details = "".join(traceback.format_list(frames))
    if isinstance(error, SyntaxError):  # where the bad line is: not a frame of the plug-in
        details += "".join(traceback.format_exception_only(error)[:-1])
    message = f"{name} failed at import: {type(error).__name__}: {error}"
    return PluginError(message, "Traceback of the plug-in (most recent call last):\n" + details if details else "")


def _module_roots(module: str) -> list[str]:
    """Where the top-level package of ``module`` lives (its folder, or its file)."""
    try:
        found = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return []
    if found is None:
        return []
    if found.submodule_search_locations:
        return [str(Path(p)) + "/" for p in found.submodule_search_locations]
    return [found.origin] if found.origin else []
