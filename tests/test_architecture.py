"""The package's shape, checked from its source: no import cycles, imports only run down
the floors (or sideways within one stage), publish and serve never see the SQL store, and
no module grows past the size where it should be split.

Every ``import`` and ``from ... import`` counts, wherever it stands: at the top, inside a
function (a lazy import still ties the two modules together) and under
``TYPE_CHECKING``. Relative imports are resolved against the importing module. The graph
functions are pure and tested on small fake graphs first, so a walker that finds nothing
cannot make these checks pass.

Floors, lowest first (an import may go down or stay within its own stage, never up):

    0  aggregator, model, errors, text, slug, sanitize   plain values and helpers
    1  finance                                           tickers, market clocks (pure)
    1  config                                            settings, durations, reload
    2  store                                             protocol, schema, writes, sql
    3  ingest | process | publish | observe              siblings: none imports another,
                                                         but ingest's orchestrator runs
                                                         process (the stage after identify)
    4  serve                                             the HTTP app
    5  runtime                                           scheduler, shards, service
    6  cli, __main__                                     the entry points
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import aggregator

PACKAGE = "aggregator"
ROOT = Path(aggregator.__file__).resolve().parent
MAX_LINES = 600
SQL_STORE = "aggregator.store.sql"
NO_SQL_STAGES = ("aggregator.publish", "aggregator.serve")

# The top-level modules of each floor; a stage package takes its floor for every module
# under it. A module missing here fails ``test_every_module_has_a_floor``.
FLOOR_MODULES: Mapping[str, int] = {
    "aggregator": 0,
    "aggregator.model": 0,
    "aggregator.errors": 0,
    "aggregator.text": 0,
    "aggregator.slug": 0,
    "aggregator.sanitize": 0,
    "aggregator.addresses": 0,
    "aggregator.__main__": 6,
}
FLOOR_PACKAGES: Mapping[str, int] = {
    "aggregator.finance": 1,
    "aggregator.config": 1,
    "aggregator.store": 2,
    "aggregator.ingest": 3,
    "aggregator.process": 3,
    "aggregator.publish": 3,
    "aggregator.observe": 3,
    "aggregator.serve": 4,
    "aggregator.runtime": 5,
    "aggregator.cli": 6,
}
# Sideways imports allowed on one floor, stage -> stage: ingest's orchestrator runs the
# processing steps between identifying items and deciding what to write; process itself
# never imports ingest (a fetch it needs comes as a callable in its context).
# ``python -m aggregator`` (``__main__``, the top level of floor 6) runs the CLI package.
SIDEWAYS_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {("aggregator.ingest", "aggregator.process"), ("top level", "aggregator.cli")}
)


@dataclass(frozen=True, slots=True)
class Import:
    """One edge: ``module`` imports ``target`` at ``path``:``line`` with ``statement``."""

    module: str
    target: str
    path: str  # relative to the repository, for messages
    line: int
    statement: str

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.statement}"


# --------------------------------------------------------------------------- pure parts


def floor_of(module: str) -> tuple[int, str] | None:
    """The module's floor and its stage (modules of one stage may import each other)."""
    if module in FLOOR_MODULES:
        return FLOOR_MODULES[module], "top level"
    for package, floor in FLOOR_PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return floor, package
    return None


def floor_problem(source: str, target: str) -> str | None:
    """Why importing ``target`` from ``source`` breaks the floors, or None."""
    mine, theirs = floor_of(source), floor_of(target)
    if mine is None or theirs is None:
        return f"no floor for {source if mine is None else target}"
    if theirs[0] > mine[0]:
        return f"runs up from floor {mine[0]} ({mine[1]}) to floor {theirs[0]} ({theirs[1]})"
    if theirs[0] == mine[0] and theirs[1] != mine[1]:
        if (mine[1], theirs[1]) in SIDEWAYS_ALLOWED:
            return None
        return f"crosses sideways from {mine[1]} to its sibling {theirs[1]} on floor {mine[0]}"
    return None


def sql_problem(source: str, target: str) -> str | None:
    if target == SQL_STORE or target.startswith(SQL_STORE + "."):
        for stage in NO_SQL_STAGES:
            if source == stage or source.startswith(stage + "."):
                return f"{stage} uses the SQL store; use the Store protocol in aggregator.store"
    return None


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a closed path
    (first == last), sorted so the result is stable. Tarjan's algorithm, iteratively."""
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    edges = {node: sorted(set(graph.get(node, ()))) for node in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if position < len(targets):
                work.append((node, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(_cycle_in(component, edges) for component in components)


def _cycle_in(component: list[str], edges: Mapping[str, list[str]]) -> list[str]:
    """A shortest closed path through the component's first module (breadth first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # pragma: no cover


# --------------------------------------------------------------------------- the walker


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name ``from ... import`` reads from (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(module: str, path: Path, known: set[str], root: Path = ROOT) -> list[Import]:
    """Every import of one of the package's modules, in any position in the file."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    shown = str(path.relative_to(root.parent))
    found: list[Import] = []

    def add(target: str, node: ast.stmt) -> None:
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            # "import a.b.c" names a module; an unknown tail is an attribute of its parent
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            text = ast.get_source_segment(source, node) or ast.dump(node)
            edge = Import(module, target, shown, node.lineno, " ".join(text.split()))
            if edge not in found:  # "from m import a, b" is one edge
                found.append(edge)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                # "from pkg import name": the submodule pkg.name when there is one
                candidate = f"{base}.{alias.name}"
                add(candidate if candidate in known else base, node)
    return sorted(found, key=lambda edge: (edge.line, edge.target))


def import_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for found in imports:
        graph.setdefault(found.module, set()).add(found.target)
    return graph


def problems(imports: Iterable[Import], check: Callable[[str, str], str | None]) -> list[str]:
    """``file:line: statement: why`` for each import ``check`` finds a problem with."""
    return [
        f"{found.where()}: {problem}"
        for found in imports
        if (problem := check(found.module, found.target)) is not None
    ]


def all_imports(root: Path = ROOT) -> list[Import]:
    files = package_files(root)
    known = set(files)
    return [
        found for module, path in files.items() for found in imports_in(module, path, known, root)
    ]


# --------------------------------------------------------------------------- self-checks


CYCLE_CASES = [
    pytest.param({"a": ["b"], "b": ["c"], "c": []}, [], id="a chain has no cycle"),
    pytest.param({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]], id="two modules"),
    pytest.param({"a": ["a"]}, [["a", "a"]], id="a module importing itself"),
    pytest.param(
        {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": []},
        [["a", "b", "c", "a"]],
        id="three modules with a tail",
    ),
    pytest.param(
        {"a": ["b"], "b": ["a"], "x": ["y"], "y": ["x"], "m": ["a", "x"]},
        [["a", "b", "a"], ["x", "y", "x"]],
        id="two separate cycles",
    ),
    pytest.param(
        {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, [], id="a diamond has no cycle"
    ),
]


@pytest.mark.parametrize(("graph", "expected"), CYCLE_CASES)
def test_find_cycles_on_fake_graphs(
    graph: Mapping[str, list[str]], expected: list[list[str]]
) -> None:
    assert find_cycles(graph) == expected


FLOOR_CASES = [
    pytest.param("aggregator.ingest.update", "aggregator.store", None, id="ingest->store"),
    pytest.param("aggregator.store.sql", "aggregator.model", None, id="store->model"),
    pytest.param("aggregator.runtime.service", "aggregator.serve.app", None, id="runtime->serve"),
    pytest.param(
        "aggregator.publish.export", "aggregator.publish.pages", None, id="export->pages, one stage"
    ),
    pytest.param("aggregator.slug", "aggregator.text", None, id="slug->text, floor 0"),
    pytest.param("aggregator.__main__", "aggregator.cli", None, id="__main__->cli, floor 6"),
    pytest.param("aggregator.store.sql", "aggregator.ingest.update", "runs up", id="store->ingest"),
    pytest.param("aggregator.model", "aggregator.config.settings", "runs up", id="model->config"),
    pytest.param(
        "aggregator.serve.app", "aggregator.runtime.service", "runs up", id="serve->runtime"
    ),
    pytest.param(
        "aggregator.ingest.update",
        "aggregator.publish.query",
        "sideways",
        id="ingest->publish, siblings",
    ),
    pytest.param(
        "aggregator.publish.render",
        "aggregator.ingest.parser",
        "sideways",
        id="publish->ingest, siblings",
    ),
    pytest.param(
        "aggregator.cli", "aggregator.newstage.thing", "no floor", id="a module with no floor"
    ),
    pytest.param(
        "aggregator.ingest.update", "aggregator.process.steps", None, id="ingest->process"
    ),
    pytest.param(
        "aggregator.process.steps", "aggregator.ingest.update", "sideways", id="process->ingest"
    ),
    pytest.param(
        "aggregator.publish.render", "aggregator.process.steps", "sideways", id="publish->process"
    ),
]


@pytest.mark.parametrize(("source", "target", "problem"), FLOOR_CASES)
def test_floor_problem_on_fake_imports(source: str, target: str, problem: str | None) -> None:
    found = floor_problem(source, target)
    assert (found is None) if problem is None else (found is not None and problem in found)


SQL_CASES = [
    pytest.param("aggregator.serve.app", "aggregator.store.sql", True, id="serve->sql"),
    pytest.param("aggregator.publish.publisher", "aggregator.store.sql", True, id="publish->sql"),
    pytest.param("aggregator.publish.publisher", "aggregator.store", False, id="publish->proto"),
    pytest.param("aggregator.runtime.service", "aggregator.store.sql", False, id="runtime->sql"),
    pytest.param("aggregator.publisher", "aggregator.store.sql", False, id="prefix is not a stage"),
]


@pytest.mark.parametrize(("source", "target", "refused"), SQL_CASES)
def test_sql_problem_on_fake_imports(source: str, target: str, refused: bool) -> None:
    assert (sql_problem(source, target) is not None) is refused


FAKE_PACKAGE = {
    "__init__.py": "",
    "model.py": "import os\n",
    "store/__init__.py": "from aggregator.model import Thing\n",
    "store/sql.py": (
        "from typing import TYPE_CHECKING\n"
        "from . import schema\n"
        "if TYPE_CHECKING:\n"
        "    from aggregator.ingest.update import Context\n"
        "def upgrade():\n"
        "    import aggregator.store.migrations.run as run\n"
    ),
    "store/schema.py": "from ..model import Thing, Other\n",
    "store/migrations/__init__.py": "",
    "store/migrations/run.py": "from aggregator.store import sql\n",
    "ingest/__init__.py": "",
    "ingest/update.py": "",
    "serve/__init__.py": "",
    "serve/app.py": "from aggregator import store\nimport aggregator.store.sql.Thing\n",
}


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Top-level, relative, function-local and TYPE_CHECKING imports all become edges,
    named by file and line; then the checks find the cycle and the violations in them."""
    root = tmp_path / PACKAGE
    for name, text in FAKE_PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    imports = all_imports(root)
    assert {(found.where(), found.target) for found in imports} == {
        ("aggregator/store/__init__.py:1: from aggregator.model import Thing", "aggregator.model"),
        ("aggregator/store/sql.py:2: from . import schema", "aggregator.store.schema"),
        (
            "aggregator/store/sql.py:4: from aggregator.ingest.update import Context",
            "aggregator.ingest.update",
        ),
        (
            "aggregator/store/sql.py:6: import aggregator.store.migrations.run as run",
            "aggregator.store.migrations.run",
        ),
        ("aggregator/store/schema.py:1: from ..model import Thing, Other", "aggregator.model"),
        (
            "aggregator/store/migrations/run.py:1: from aggregator.store import sql",
            "aggregator.store.sql",
        ),
        ("aggregator/serve/app.py:1: from aggregator import store", "aggregator.store"),
        ("aggregator/serve/app.py:2: import aggregator.store.sql.Thing", "aggregator.store.sql"),
    }
    assert find_cycles(import_graph(imports)) == [
        [
            "aggregator.store.migrations.run",
            "aggregator.store.sql",
            "aggregator.store.migrations.run",
        ]
    ]
    assert problems(imports, floor_problem) == [
        "aggregator/store/sql.py:4: from aggregator.ingest.update import Context: "
        "runs up from floor 2 (aggregator.store) to floor 3 (aggregator.ingest)"
    ]
    assert problems(imports, sql_problem) == [
        "aggregator/serve/app.py:2: import aggregator.store.sql.Thing: "
        "aggregator.serve uses the SQL store; use the Store protocol in aggregator.store"
    ]


def test_relative_imports_resolve() -> None:
    def first(code: str) -> ast.ImportFrom:
        node = ast.parse(code).body[0]
        assert isinstance(node, ast.ImportFrom)
        return node

    assert resolve("aggregator.store.sql", False, first("from . import schema")) == (
        "aggregator.store"
    )
    assert resolve("aggregator.store", True, first("from .sql import X")) == "aggregator.store.sql"
    assert resolve("aggregator.publish.render", False, first("from ..model import X")) == (
        "aggregator.model"
    )


# --------------------------------------------------------------------------- the checks


def test_every_module_has_a_floor() -> None:
    unplaced = sorted(module for module in package_files() if floor_of(module) is None)
    assert not unplaced, f"modules without a floor (add them to FLOOR_*): {unplaced}"


def test_no_import_cycles() -> None:
    imports = all_imports()
    messages = []
    for cycle in find_cycles(import_graph(imports)):
        messages.append("cycle: " + " -> ".join(cycle))
        for source, target in itertools.pairwise(cycle):
            messages += [
                f"    {found.where()}"
                for found in imports
                if found.module == source and found.target == target
            ]
    assert not messages, "\n".join(messages)


def test_imports_only_run_down_the_floors() -> None:
    found = problems(all_imports(), floor_problem)
    assert not found, "\n".join(found)


def test_publish_and_serve_do_not_import_the_sql_store() -> None:
    found = problems(all_imports(), sql_problem)
    assert not found, "\n".join(found)


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in package_files().values()
    }
    over = [f"{name}: {lines} lines" for name, lines in sorted(sizes.items()) if lines > MAX_LINES]
    assert not over, f"over {MAX_LINES} lines (split them):\n" + "\n".join(over)
