"""Name registries for plugins (defenses and attacks), with typed per-name options.

A plugin is a class with a frozen dataclass ``Config``.  It is selected by a *spec*:
``name`` or ``name:key=value:key=value`` (e.g. ``vae:arch=cnn``, ``pgd:steps=100``).
The config is built from the dataclass defaults (the paper's settings), then the class's
``profile_overrides[profile]`` (budgets only), then the spec's options.

Built-ins are found by importing every module of their package; third-party packages
register through the entry-point group (``bench.defenses`` / ``bench.attacks``), whose
entries point at plugin classes.  ``catalog()`` lists them all without importing the built-ins
(``bench list`` must not pay for torch).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from foundation.catalog import Entry, builtin_modules, plugins, read_catalog
from foundation.errors import BenchError, did_you_mean

#: Field metadata of options added after results were stored: left out of the key at their default.
KEYED_FROM_DEFAULT = "keyed_from_default"


def added_option(default: Any) -> Any:
    """A config field added to an existing plugin: stored results under its default keep their keys."""
    return dataclasses.field(default=default, metadata={KEYED_FROM_DEFAULT: True})


@dataclass(frozen=True)
class NoOptions:
    """Config of a plugin that takes no options."""


class Plugin:
    """Base of every registered defense and attack."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    profile_overrides: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: False for plugins composed of others (running them under ``all`` would repeat their parts).
    selected_by_all: ClassVar[bool] = True

    #: The profile the plugin was built for (a composite plugin builds its parts for the same one).
    profile: str = "paper"

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def options(self) -> dict[str, Any]:
        """The plugin's full configuration as plain JSON-able values (hashed for caching).

        Options added after results were stored carry ``keyed_from_default`` metadata: at their
        default they are left out, so the stored results keep their keys.
        """
        options = dataclasses.asdict(self.config)
        for field in dataclasses.fields(self.config):
            if field.metadata.get(KEYED_FROM_DEFAULT) and options[field.name] == field.default:
                del options[field.name]
        return options


@dataclass(frozen=True)
class Spec:
    """A parsed ``name:key=value`` selector."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Spec:
        name, *parts = text.strip().split(":")
        if not name:
            raise BenchError(f"empty name in {text!r}")
        options = []
        for part in parts:
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise BenchError(f"option {part!r} in {text!r} is not of the form key=value")
            if key.strip() in (given for given, _ in options):
                raise BenchError(f"option {key.strip()!r} is given twice in {text!r}; give each option once")
            options.append((key.strip(), value.strip()))
        return cls(name, tuple(options))

    @property
    def label(self) -> str:
        """The row label in tables: the spec's ``name=`` option if it has one (a user's model), else its text."""
        named = dict(self.options).get("name")
        return named or ":".join([self.name, *(f"{k}={v}" for k, v in self.options)])


P = TypeVar("P", bound=Plugin)


def _convert(value: str, annotation: Any, where: str) -> Any:
    """Convert an option's text to its dataclass field type (int, float, bool, str, Literal)."""
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise BenchError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if annotation is bool:
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise BenchError(f"{where} must be true or false; got {value!r}")
    if annotation in (int, float):
        try:
            number = annotation(value)
        except ValueError:
            raise BenchError(f"{where} must be a number ({annotation.__name__}); got {value!r}") from None
        if not math.isfinite(number):
            raise BenchError(f"{where} must be a finite number; got {value!r}")
        return number
    return value


class Registry(Generic[P]):
    """Maps names to plugin classes; ``build`` turns a spec into a configured instance."""

    def __init__(self, kind: str, base: type[P], builtin_package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.base = base
        self.builtin_package = builtin_package
        self.entry_point_group = entry_point_group
        self._classes: dict[str, type[P]] = {}
        self._aliases: set[str] = set()
        self._loaded = False

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[type[P]], type[P]]:
        """Class decorator: ``@register_attack("fgsm")``.  Aliases resolve to the same class but
        are not selected again by ``all``."""

        def decorate(cls: type[P]) -> type[P]:
            for key in (name, *aliases):
                existing = self._classes.get(key)
                if existing is not None and existing is not cls:
                    raise ValueError(f"{self.kind} {key!r} is registered twice ({existing} and {cls})")
                self._classes[key] = cls
            self._aliases.update(aliases)
            if "name" not in vars(cls):  # not inherited: a registered subclass gets its own name
                cls.name = name
            return cls

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in builtin_modules(self.builtin_package):
            importlib.import_module(module)
        for name, cls in plugins(self.entry_point_group, self.base):
            self.register(name)(cls)

    def catalog(self) -> list[Entry]:
        """Every registered name with its description, without importing the built-ins (see ``foundation.catalog``)."""
        return read_catalog(self.kind, self.builtin_package, self.entry_point_group)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def items(self) -> Iterator[tuple[str, type[P]]]:
        self._load()
        for name in sorted(self._classes):
            yield name, self._classes[name]

    def get(self, name: str) -> type[P]:
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            names = self.names()
            raise BenchError(
                f"unknown {self.kind} {name!r}; {did_you_mean(name, names)}valid: {', '.join(names)}"
            ) from None

    def build(self, spec: Spec | str, profile: str) -> P:
        spec = Spec.parse(spec) if isinstance(spec, str) else spec
        cls = self.get(spec.name)
        hints = typing.get_type_hints(cls.Config)
        fields = {field.name for field in dataclasses.fields(cls.Config)}
        values: dict[str, Any] = dict(cls.profile_overrides.get(profile, {}))
        for key, text in spec.options:
            if key not in fields:
                valid, hint = ", ".join(sorted(fields)) or "none", did_you_mean(key, fields)
                raise BenchError(f"{self.kind} {spec.name!r} has no option {key!r}; {hint}valid options: {valid}")
            values[key] = _convert(text, hints[key], f"option {key} of {self.kind} {spec.name!r}")
        try:
            config = cls.Config(**values)
        except (TypeError, ValueError) as error:
            raise BenchError(f"bad options for {self.kind} {spec.name!r}: {error}") from None
        plugin = cls(config)
        plugin.profile = profile
        return plugin

    def expand(self, text: str) -> list[Spec]:
        """Parse a comma-separated selection; ``all`` stands for every registered name."""
        specs: list[Spec] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            if item == "all":
                specs.extend(Spec(name) for name in self.primary_names())
            else:
                spec = Spec.parse(item)
                self.get(spec.name)
                specs.append(spec)
        if not specs:
            raise BenchError(f"no {self.kind} selected; valid: all, {', '.join(self.names())}")
        return list(dict.fromkeys(specs))

    def primary_names(self) -> list[str]:
        """What ``all`` selects: names that are not aliases, of plugins not composed of others."""
        self._load()
        return sorted(name for name, cls in self._classes.items() if name not in self._aliases and cls.selected_by_all)
