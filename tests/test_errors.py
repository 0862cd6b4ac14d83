"""One exception tree: every exception class the package defines derives from
``AggregatorError`` (or is listed below as internal, with the reason), and the tree drawn
in ``aggregator/errors.py``'s docstring is the tree the classes form."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import aggregator
from aggregator import errors
from aggregator.errors import AggregatorError

# Exceptions defined outside the tree on purpose. Each must be named in the notes of
# errors.py's docstring as well.
INTERNAL: dict[str, str] = {
    "aggregator.ingest.fastparse.Declined": (
        "a signal inside the fast parser; parse_fast catches it and falls back to feedparser"
    ),
    "aggregator.ingest.fetcher.ForbiddenAddressError": (
        "a urllib3 NewConnectionError for urllib3's connect handling; the fetcher wraps the "
        "requests.ConnectionError that carries it into ConnectError"
    ),
    "aggregator.ingest.fetcher.ForbiddenTargetError": (
        "raised inside the fetcher's adapter as the reason of a requests.ConnectionError "
        "(a proxied request naming a refused address); _wrap turns it into ConnectError"
    ),
}
# Modules that cannot be imported on their own; their source is checked instead.
NOT_IMPORTABLE: dict[str, str] = {
    "aggregator.store.migrations.env": "Alembic runs it as a script, inside a migration",
}
ROOT = Path(aggregator.__file__).resolve().parent


def package_modules() -> list[ModuleType]:
    modules = [aggregator]
    for info in pkgutil.walk_packages(aggregator.__path__, "aggregator."):
        if info.name not in NOT_IMPORTABLE:
            modules.append(importlib.import_module(info.name))
    return modules


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined at the top level of a module of the package."""
    found: dict[str, type[BaseException]] = {}
    for module in package_modules():
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_the_walk_finds_the_known_exceptions() -> None:
    found = defined_exceptions()
    assert "aggregator.errors.AggregatorError" in found
    assert "aggregator.errors.QueryError" in found
    assert set(INTERNAL) <= set(found)


def test_every_exception_of_the_package_is_in_the_tree() -> None:
    outside = [
        name
        for name, cls in sorted(defined_exceptions().items())
        if not issubclass(cls, AggregatorError) and name not in INTERNAL
    ]
    assert not outside, (
        f"exceptions outside the AggregatorError tree: {outside} (move them to "
        "aggregator/errors.py, or list them in INTERNAL with the reason they never escape)"
    )


def test_internal_exceptions_stay_outside_and_are_documented() -> None:
    found = defined_exceptions()
    notes = errors.__doc__ or ""
    for name in INTERNAL:
        assert not issubclass(found[name], AggregatorError), f"{name} is in the tree now"
        short = name.removeprefix("aggregator.")
        assert short in notes, f"errors.py's notes do not mention {short}"


def test_exceptions_are_only_defined_at_a_module_top_level() -> None:
    """A class nested in a function is invisible to the walk above; so is a module that
    cannot be imported. Neither may define an exception-like class."""
    nested = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {node for node in tree.body if isinstance(node, ast.ClassDef)}
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = " ".join(ast.unparse(base) for base in node.bases)
            looks_like_error = re.search(r"Error|Exception|Warning", f"{node.name} {bases}")
            if looks_like_error and (node not in top or module in NOT_IMPORTABLE):
                nested.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {node.name}")
    assert not nested, f"exception classes the walk cannot see: {nested}"


# --------------------------------------------------------------------------- the drawing


def drawn_tree() -> dict[str, str | None]:
    """Each class named in the docstring's drawing, with the parent the drawing gives it."""
    doc = errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n")[1]
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    indent = None
    for line in block.splitlines():
        found = re.match(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+)", line)
        assert found, f"not a line of the tree: {line!r}"
        if indent is None:
            indent = len(found["lead"])
        depth, rest = divmod(len(found["lead"]) - indent, 4)
        assert rest == 0, f"misaligned: {line!r}"
        assert depth <= len(stack), f"misaligned: {line!r}"
        del stack[depth:]
        parents[found["name"]] = stack[-1] if stack else None
        stack.append(found["name"])
    return parents


def errors_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }


def test_the_drawing_names_every_class_in_errors_py() -> None:
    assert set(drawn_tree()) == set(errors_classes())


@pytest.mark.parametrize("name", sorted(errors_classes()))
def test_the_drawing_gives_each_class_its_real_parent(name: str) -> None:
    cls = errors_classes()[name]
    drawn = drawn_tree().get(name)
    if cls is AggregatorError:
        assert drawn is None
        return
    assert drawn is not None, f"{name} is not drawn under any class"
    real = [base.__name__ for base in cls.__bases__]
    assert real == [drawn], f"{name} is drawn under {drawn} but derives from {real}"
