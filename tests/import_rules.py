"""The import rules of the layout, read from the source of every module (function-local imports included).

``benchmark/`` is laid out by stage, and imports run one way::

    config  <  store  <  datasets  <  results  <  run, publish  <  reports, perf  <  select  <  faces

- ``config/`` imports nothing else of ``benchmark/``; each stage imports only the stages before it (``run/``
  and ``publish/`` are siblings: neither imports the other; ``perf/`` is a face of measurement, it does not
  publish);
- ``results/`` and ``publish/`` never import torch (nor ``attacks``/``defenses``, which do), so that the
  commands that read a store start without it;
- an executor imports the driver, never the runner;
- no import cycle among the modules of the project;
- function-local imports of the project's own modules only in the faces (``cli``, ``api``, the package's
  ``__init__``), which import late for start-up time; elsewhere only optional third-party libraries
  (Ray, torchvision, matplotlib, the attack libraries) may be imported inside a function;
- between the packages: ``foundation`` < ``attacks`` < ``defenses`` < ``benchmark``.

``violations(root)`` lists every broken rule of the tree under ``root`` (the repository, or a test's copy).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("foundation", "attacks", "defenses", "benchmark")
PROJECT = frozenset(PACKAGES)
#: The stages of ``benchmark/`` in import order: a module may import its own stage and those of lower rank.
RANKS = {
    "config": 0,
    "store": 1,
    "datasets": 2,
    "results": 3,
    "run": 4,
    "publish": 4,
    "reports": 5,
    "perf": 5,
    "select": 6,
    "faces": 7,
}
#: Same-rank stages that must not import each other, and other imports a stage must not make.
FORBIDDEN = {
    "run": {"publish", "reports", "perf", "select", "faces"},
    "publish": {"run", "reports", "perf", "select", "faces"},
    "perf": {"publish", "reports", "select", "faces"},
    "reports": {"perf", "select", "faces"},
}
TORCH_FREE = {"results", "publish"}
#: What ``results/`` and ``publish/`` may not import: torch and the packages built on it.
TORCH = ("torch", "torchvision", "attacks", "defenses")
FACES = {"benchmark", "benchmark.cli", "benchmark.api", "benchmark.__main__"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (as written, or the submodule a ``from`` import names)
    line: int
    local: bool  # inside a function
    type_checking: bool  # under ``if TYPE_CHECKING:``


def module_names(root: Path) -> dict[str, Path]:
    """The project's modules under ``root``: dotted name -> file."""
    names = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []

    def visit(node: ast.AST, local: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner_local = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            guarded = type_checking or (
                isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            )
            if isinstance(child, ast.Import):
                found.extend(Import(name, alias.name, child.lineno, local, type_checking) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}".rstrip(".")
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in modules else base
                    found.append(Import(name, target, child.lineno, local, type_checking))
            visit(child, inner_local, guarded)

    visit(tree, False, False)
    return found


def stage(module: str) -> str | None:
    """The stage of a ``benchmark`` module (``None`` outside ``benchmark``)."""
    parts = module.split(".")
    if parts[0] != "benchmark":
        return None
    if module in FACES or len(parts) == 1:
        return "faces"
    return parts[1] if parts[1] in RANKS else "faces" if len(parts) == 2 else parts[1]


def _owner(target: str, modules: dict[str, Path]) -> str | None:
    """The project module ``target`` names (itself, or the package a dotted name falls in)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def violations(root: Path) -> list[str]:
    """Every broken import rule of the tree under ``root``, one line each (``path:line: what``)."""
    modules = module_names(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        where = path.relative_to(root)
        source_stage, source_package = stage(name), name.split(".")[0]
        for item in _imports(name, path, modules):
            top = item.target.split(".")[0]
            at = f"{where}:{item.line}"
            if source_stage in TORCH_FREE and top in TORCH:
                problems.append(f"{at}: {source_stage}/ imports {item.target}, which imports torch")
            if top not in PROJECT:
                continue
            target = _owner(item.target, modules)
            if item.local and name not in FACES:
                problems.append(f"{at}: function-local import of {item.target} outside the faces")
            if PACKAGES.index(top) > PACKAGES.index(source_package):
                problems.append(f"{at}: {source_package} imports {item.target} ({' < '.join(PACKAGES)})")
            target_stage = stage(item.target)
            if source_stage is not None and target_stage is not None and target_stage != source_stage:
                if source_stage == "config":
                    problems.append(f"{at}: config/ imports {item.target}; it imports nothing else of benchmark/")
                elif RANKS[target_stage] > RANKS[source_stage] or target_stage in FORBIDDEN.get(source_stage, ()):
                    problems.append(f"{at}: {source_stage}/ imports {target_stage}/ ({item.target})")
            if name.startswith("benchmark.run.executors") and item.target.startswith("benchmark.run.runner"):
                problems.append(f"{at}: an executor imports the runner; it takes the driver (benchmark.run.driver)")
            if target is not None and target != name and not item.type_checking:
                graph[name].add(target)
    problems.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph))
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [[*component, component[0]] for component in components]
