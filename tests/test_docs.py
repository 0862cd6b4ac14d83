"""Every YAML key and CLI command is documented (a new one without docs fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from aggregator.cli import main
from aggregator.config import settings as config
from aggregator.config import steps

DOCS = Path(__file__).resolve().parent.parent / "docs"
MODELS: list[type[BaseModel]] = [
    config.Settings,
    config.Defaults,
    config.Category,
    config.Source,
    config.JsonFields,
    config.MarketInterval,
    config.HtmlList,
    config.Server,
    steps.Match,
    steps.Replacement,
    steps.Rewrite,
    steps.PageUrl,
    steps.FullText,
    steps.Convert,
    *steps.STEP_MODELS.values(),
]


def documented_keys() -> set[str]:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([a-z_]+)`", text, re.M)) | set(re.findall(r"`([a-z_]+)`", text))


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_every_config_key_is_documented(model: type[BaseModel]) -> None:
    keys = {field.alias or name for name, field in model.model_fields.items()}
    missing = keys - documented_keys()
    assert not missing, f"undocumented keys of {model.__name__}: {sorted(missing)}"


def commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += commands(command, f"{prefix}{name} ")
        else:
            names.append(prefix + name)
    return names


@pytest.mark.parametrize("name", commands(main))
def test_every_command_is_documented(name: str) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert f"`aggregator {name}" in text
