"""What ``bench list`` shows, read without importing the built-in plugins (and with them torch).

The built-ins are read from their package's source with ``ast``: a class decorated with
``@register_<kind>("name", aliases=(...))`` gives its names, and its ``description`` is the string
assigned in its body or, failing that, in a base class of the same package, found by name.
Third-party plugins (entry points) are imported for real: their import cost is their own.
``tests/unit/test_startup.py`` checks that the catalog equals what the imported registries report.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from foundation.errors import BenchError

#: kind -> (package of the built-ins, entry-point group of third-party plugins), as the registries are built.
REGISTRIES = {"defense": ("defenses", "bench.defenses"), "attack": ("attacks", "bench.attacks")}


@dataclass(frozen=True)
class Entry:
    """A registered name, its plugin's description and the plugin's own name (another one for an alias)."""

    name: str
    description: str
    plugin_name: str


def builtin_modules(package: str) -> list[str]:
    """Full names of the package's public modules: the ones whose import registers the built-ins."""
    path = importlib.import_module(package).__path__
    return [f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if not info.name.startswith("_")]


def plugins(group: str, base: type = object) -> Iterator[tuple[str, type]]:
    """Import the entry points of ``group``: (name, class); one that fails to load is a ``BenchError``."""
    for entry in entry_points(group=group):
        try:
            cls = entry.load()
        except Exception as error:
            raise BenchError(
                f"plugin {entry.name!r} ({entry.value}) of group {group} failed to load: {error}"
            ) from error
        if not (isinstance(cls, type) and issubclass(cls, base)):
            what = "class" if base is object else f"{base.__name__} subclass"
            raise BenchError(f"plugin {entry.name!r} ({entry.value}) is not a {what}")
        yield entry.name, cls


@dataclass
class _Class:
    """A class statement as the source states it."""

    bases: list[str]
    description: str | None = None
    name: str | None = None  # a ``name`` the class sets itself (the registry then keeps it)
    registrations: list[tuple[str, ...]] = field(default_factory=list)  # (name, *aliases), in decorator order


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def _read(source: str, decorator: str) -> dict[str, _Class]:
    """The module's top-level classes, by name."""
    classes = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "") for base in node.bases]
        cls = classes[node.name] = _Class(bases)
        for statement in node.body:
            target = statement.targets[0] if isinstance(statement, ast.Assign) else getattr(statement, "target", None)
            value = _literal(getattr(statement, "value", None))
            if isinstance(target, ast.Name) and target.id in ("description", "name") and isinstance(value, str):
                setattr(cls, target.id, value)
        for call in node.decorator_list:
            function = getattr(call, "func", None)
            if getattr(function, "id", getattr(function, "attr", None)) != decorator or not call.args:
                continue
            name = _literal(call.args[0])
            aliases = next((_literal(k.value) for k in call.keywords if k.arg == "aliases"), ())
            if isinstance(name, str) and isinstance(aliases, tuple):
                cls.registrations.append((name, *aliases))
    return classes


def _description(cls: _Class, module: dict[str, _Class], package: dict[str, _Class], seen: set[int]) -> str | None:
    """The class's own description, else its first base's that has one (depth first, as single inheritance)."""
    seen.add(id(cls))
    if cls.description is not None:
        return cls.description
    for base in cls.bases:
        parent = module.get(base) or package.get(base)
        if parent is not None and id(parent) not in seen:
            found = _description(parent, module, package, seen)
            if found is not None:
                return found
    return None


def builtins(package: str, decorator: str) -> list[Entry]:
    """The entries of the classes that ``package``'s modules register with ``@decorator(...)``."""
    modules = []
    for module in builtin_modules(package):
        origin = importlib.util.find_spec(module).origin
        modules.append(_read(Path(origin).read_text(encoding="utf-8"), decorator))
    everywhere = {name: cls for classes in modules for name, cls in classes.items()}
    entries = []
    for classes in modules:
        for cls in classes.values():
            if not cls.registrations:
                continue
            description = _description(cls, classes, everywhere, set()) or ""
            # decorators apply bottom up; the first applied names the class unless it names itself
            plugin_name = cls.name or cls.registrations[-1][0]
            entries += [Entry(name, description, plugin_name) for names in cls.registrations for name in names]
    return entries


def read_catalog(kind: str, package: str, group: str) -> list[Entry]:
    """Every name registered for ``kind``, sorted: the built-ins read from source, the plugins imported."""
    entries = {entry.name: entry for entry in builtins(package, f"register_{kind}")}
    for name, cls in plugins(group):
        entries[name] = Entry(name, getattr(cls, "description", ""), vars(cls).get("name", name))
    return sorted(entries.values(), key=lambda entry: entry.name)
