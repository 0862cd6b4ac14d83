"""The YAML configuration, parsed once into frozen typed objects.

``load_settings(path)`` reads the file, checks everything, and either returns ``Settings``
or raises ``ConfigError`` whose ``problems`` are one line each, in the form

    config/sources.yaml:12: sources[3].interval: bad duration '5x' (use ...)

Every key is documented in docs/configuration.md (a test keeps the two in step) and
``aggregator config-schema`` prints the JSON Schema generated from these models.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
)

from aggregator.addresses import PRIVATE_NETWORKS
from aggregator.config.durations import format_duration
from aggregator.config.parts import (
    AllowedNetwork,
    Category,
    Defaults,
    Duration,
    Housekeeping,
    IdFrom,
    Interval,
    JsonFields,
    MarketInterval,
    PerHost,
    _check_timezone,
    _Frozen,
)
from aggregator.config.selectors import HtmlList
from aggregator.config.steps import StepConfig
from aggregator.config.yaml_errors import describe_yaml_error
from aggregator.errors import ConfigError
from aggregator.model import IdRule
from aggregator.slug import is_valid_slug

DEFAULT_CONFIG_PATH = "config/sources.yaml"
DEFAULT_DATABASE_URL = "sqlite:///data/aggregator.db"
CONFIG_ENV = "AGGREGATOR_CONFIG"
DATABASE_ENV = "AGGREGATOR_DATABASE_URL"
ADMIN_TOKEN_ENV = "AGGREGATOR_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a secret)


log = logging.getLogger(__name__)
_SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Source(_Frozen):
    id: str
    url: str
    type: Literal["auto", "rss", "atom", "jsonfeed", "json", "html"] = "auto"
    category: str | None = None
    category_from: str | None = None
    category_title: str = "{name}新闻"
    tags: tuple[str, ...] = ()
    interval: Interval | None = None
    cron: str | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=600)
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    priority: int = 0  # whose copy of a shared item is stored: higher first, then listed first
    id_from: Literal["infocode", "guid", "link", "hash"] | IdFrom = "infocode"
    timezone: str | None = None  # for dates the source gives without an offset
    # non-public networks this source may reach, besides the top-level allow_networks
    allow_networks: tuple[AllowedNetwork, ...] = ()
    # JSON API sources (type: json)
    items_path: str | None = None
    fields: JsonFields | None = None
    date_format: str | None = None
    content_url: str | None = None
    content_path: str | None = None
    # HTML list pages (type: html)
    html: HtmlList | None = None
    # processing steps after defaults.process (config/steps.py, aggregator/process/)
    process: tuple[StepConfig, ...] = ()

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _SOURCE_ID.match(value):
            raise ValueError(f"bad source id {value!r} (letters, digits, '.', '_', '-')")
        return value

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
        if parts.scheme == "file" and (parts.path or parts.netloc):
            return value
        raise ValueError(f"bad URL {value!r} (use http://, https:// or file:)")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as e:
            raise ValueError(f"bad cron expression {value!r}: {e}") from e
        return value

    @field_validator("category_title")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(name="x")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"bad title template {value!r} (only {{name}} is known)") from e
        return value

    def category_field(self) -> str | None:
        """The item field that names the category, if any."""
        if self.fields is not None and self.fields.category_from:
            return self.fields.category_from
        return self.category_from

    def id_rule(self) -> IdRule:
        if isinstance(self.id_from, IdFrom):
            return IdRule(regex=re.compile(self.id_from.regex))
        return IdRule(first=self.id_from)

    def effective_interval(self, defaults: Defaults) -> timedelta:
        """The plain interval; a market-clocked source's shortest (its trading one)."""
        if isinstance(self.interval, MarketInterval):
            return self.interval.trading
        return self.interval or defaults.interval

    def market_interval(self) -> MarketInterval | None:
        return self.interval if isinstance(self.interval, MarketInterval) else None

    def schedule(self, defaults: Defaults) -> str:
        """How it is polled, for people: ``every 5m``, ``cron */15 * * * *``, ``XSHG 1m/30m``."""
        if self.cron:
            return f"cron {self.cron}"
        if (market := self.market_interval()) is not None:
            trading, closed = format_duration(market.trading), format_duration(market.closed)
            return f"{market.market} {trading}/{closed}"
        return f"every {format_duration(self.effective_interval(defaults))}"

    def effective_timeout(self, defaults: Defaults) -> float:
        return self.timeout_seconds or defaults.timeout_seconds

    def effective_steps(self, defaults: Defaults) -> tuple[StepConfig, ...]:
        """The processing steps of its items: ``defaults.process``, then its own."""
        return defaults.process + self.process


class Server(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Bearer token for the mutating endpoints (trigger a fetch, reload the config); without
    # one they do not exist. $AGGREGATOR_ADMIN_TOKEN overrides it.
    admin_token: str | None = Field(None, min_length=16)
    # rendered feeds and pages kept in memory per process (one LRU; see serve/httpcache.py)
    max_cache_entries: int = Field(1024, ge=1)


class Settings(_Frozen):
    """The whole file. ``path`` is where it was read from (not a YAML key)."""

    @field_validator("ticker_names")
    @classmethod
    def _names_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file {value!r} (a CSV with columns name and code)")
        return value

    database: str = DEFAULT_DATABASE_URL
    timezone: str = "Asia/Shanghai"
    site_url: str | None = None
    auto_migrate: bool = True
    # non-public networks every source may reach (loopback, private...); link-local and
    # cloud metadata addresses never (addresses.py; checked on the connected socket)
    allow_networks: tuple[AllowedNetwork, ...] = ()
    # items older than this (by publication time) are pruned and never stored again;
    # unset: kept forever. Per category: categories.<slug>.retention
    retention: Duration | None = None
    # a CSV of security names and codes (columns name, code) to find tickers by name;
    # relative to the config file's folder. Unset: tickers by code only.
    ticker_names: str | None = None
    per_host: PerHost = PerHost()
    housekeeping: Housekeeping = Housekeeping()
    server: Server = Server()
    defaults: Defaults = Defaults()
    categories: dict[str, Category] = Field(default_factory=dict)
    sources: tuple[Source, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)


# --------------------------------------------------------------------------- loading


def _compose_with_lines(text: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """YAML to plain data plus the line (1-based) of every key and list element."""
    lines: dict[tuple[str | int, ...], int] = {}
    constructor = yaml.SafeLoader("")

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = walk(key_node, (*path, "__key__"))
                if isinstance(key, str | int):
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    out[key] = walk(value_node, (*path, key))
                else:
                    out[str(key)] = walk(value_node, (*path, str(key)))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(child, (*path, i)) for i, child in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)  # a typed scalar

    # libyaml's parser when PyYAML was built with it (the usual wheels are): same nodes
    # and line marks, several times faster on a config with thousands of sources
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    root = yaml.compose(text, Loader=loader)
    if root is None:
        return {}, lines
    return walk(root, ()), lines


def _key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose keys are valid at ``loc`` (for 'did you mean')."""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        if model is Settings and part == "categories":
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return model


class _Problems:
    def __init__(self, filename: str, lines: Mapping[tuple[str | int, ...], int]) -> None:
        self.filename = filename
        self.lines = lines
        self.items: list[tuple[int, str]] = []

    def add(self, loc: tuple[str | int, ...], message: str) -> None:
        line = 0
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in self.lines:
                line = self.lines[loc[:cut]]
                break
        self.items.append((line, f"{self.filename}:{line}: {_key_path(loc)}: {message}"))

    def sorted(self) -> list[str]:
        return [text for _, text in sorted(self.items, key=lambda pair: pair[0])]


def _message_for(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "missing required key"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic adds union branch names ("IdFrom", "literal[...]"); keep only real keys.
    return tuple(p for p in loc if isinstance(p, int) or not re.match(r"^[A-Z]|^literal\[", p))


def _resolve_file_url(value: str, base_dir: Path) -> str:
    if value.startswith("file:") and not value.startswith("file:/"):
        return (base_dir / value[len("file:") :]).resolve().as_uri().replace("%7Bid%7D", "{id}")
    return value


def _resolve_step_urls(steps: Any, base_dir: Path) -> None:
    """A full_text step's ``page_url.with`` may name a local copy, relative like ``url``."""
    for step in steps if isinstance(steps, list) else ():
        page_url = (step.get("full_text") or {}).get("page_url") if isinstance(step, dict) else None
        if isinstance(page_url, dict) and isinstance(page_url.get("with"), str):
            page_url["with"] = _resolve_file_url(page_url["with"], base_dir).replace("%5C", "\\")


def _resolve_file_urls(data: dict[str, Any], base_dir: Path) -> None:
    """`file:samples/x.xml` and `ticker_names` are relative to the config file's folder."""
    names = data.get("ticker_names")
    if isinstance(names, str) and names:
        data["ticker_names"] = str((base_dir / names).resolve())
    defaults = data.get("defaults")
    if isinstance(defaults, dict):
        _resolve_step_urls(defaults.get("process"), base_dir)
    for source in data.get("sources") or []:
        if not isinstance(source, dict):
            continue
        _resolve_step_urls(source.get("process"), base_dir)
        for key in ("url", "content_url"):
            value = source.get(key)
            if (
                isinstance(value, str)
                and value.startswith("file:")
                and not value.startswith("file:/")
            ):
                source[key] = (
                    (base_dir / value[len("file:") :])
                    .resolve()
                    .as_uri()
                    .replace("%7Bid%7D", "{id}")
                )


def _read_deprecated(data: dict[str, Any], problems: _Problems) -> None:
    """``allow_private_networks`` (before issue 13) read as ``allow_networks``, with one
    deprecation line in the log. True let a fetch reach any address; it now reads as the
    loopback and private ranges (``addresses.PRIVATE_NETWORKS``), never link-local or
    metadata addresses. False refused what the default refuses now."""
    if "allow_private_networks" not in data:
        return
    value = data.pop("allow_private_networks")
    loc: tuple[str | int, ...] = ("allow_private_networks",)
    if not isinstance(value, bool):
        problems.add(loc, "must be true or false (deprecated: use allow_networks)")
        return
    if "allow_networks" in data:
        problems.add(loc, "deprecated and replaced by allow_networks: give only allow_networks")
        return
    where = f"{problems.filename}:{problems.lines.get(loc, 0)}"
    if not value:
        log.warning(
            "%s: allow_private_networks is deprecated: false is now the default (public "
            "addresses only); remove the key",
            where,
        )
        return
    networks = [str(network) for network in PRIVATE_NETWORKS]
    data["allow_networks"] = networks
    log.warning(
        "%s: allow_private_networks is deprecated: read as allow_networks: [%s] "
        "(link-local and cloud metadata addresses are no longer allowed); write that "
        "instead (see docs/configuration.md)",
        where,
        ", ".join(f'"{network}"' for network in networks),
    )


def _cross_check(data: Mapping[str, Any], problems: _Problems) -> None:
    """Checks that span keys: duplicate ids, unknown categories, incomplete JSON sources."""
    categories = data.get("categories") or {}
    if isinstance(categories, dict):
        for slug in categories:
            if not is_valid_slug(str(slug)):
                problems.add(
                    ("categories", slug),
                    f"bad category slug {slug!r} (use [a-z0-9-], e.g. shanghaizhengquanbao)",
                )
    sources = data.get("sources") or []
    if not isinstance(sources, list):
        return
    first_line: dict[str, int] = {}
    for index, source in enumerate(sources):
        if not isinstance(source, dict):
            continue
        loc: tuple[str | int, ...] = ("sources", index)
        source_id = source.get("id")
        if isinstance(source_id, str):
            if source_id in first_line:
                problems.add(
                    (*loc, "id"),
                    f"duplicate source id {source_id!r} (first at line {first_line[source_id]})",
                )
            else:
                first_line[source_id] = problems.lines.get((*loc, "id"), 0)
        category = source.get("category")
        if (
            isinstance(category, str)
            and isinstance(categories, dict)
            and category not in categories
        ):
            known = ", ".join(sorted(map(str, categories))) or "none defined"
            problems.add((*loc, "category"), f"unknown category {category!r} (known: {known})")
        fields = source.get("fields")
        named_by_field = isinstance(fields, dict) and fields.get("category_from")
        if not source.get("category") and not source.get("category_from") and not named_by_field:
            problems.add(
                loc, "needs category or category_from (for type json: fields.category_from)"
            )
        if source.get("interval") is not None and source.get("cron") is not None:
            problems.add((*loc, "cron"), "give interval or cron, not both")
        is_json = source.get("type") == "json"
        if is_json and not source.get("fields"):
            problems.add(loc, "type json needs fields (at least id and title)")
        if is_json and source.get("items_path") is None:
            problems.add(loc, "type json needs items_path (e.g. record)")
        is_html = source.get("type") == "html"
        if is_html and not source.get("html"):
            problems.add(loc, "type html needs html (at least items and title)")
        if "html" in source and not is_html:
            problems.add((*loc, "html"), "html only applies to type: html")
        for key in ("items_path", "fields", "content_url", "content_path", "date_format"):
            if key in source and not is_json:
                problems.add((*loc, key), f"{key} only applies to type: json")
        content_url = source.get("content_url")
        if isinstance(content_url, str) and "{id}" not in content_url:
            problems.add((*loc, "content_url"), "content_url needs an {id} placeholder")
        if content_url and not source.get("content_path"):
            problems.add(loc, "content_url needs content_path (e.g. data.content)")


def parse_settings(text: str, filename: str = "<config>", base_dir: Path | None = None) -> Settings:
    """Parse and check a configuration text. Raises ConfigError listing every problem."""
    try:
        data, lines = _compose_with_lines(text)
    except yaml.YAMLError as fast_error:
        # report with the pure-Python parser: its wording is the same on every build
        yaml_error: yaml.YAMLError = fast_error
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as slow_error:
            yaml_error = slow_error
        raise ConfigError([f"{filename}:{describe_yaml_error(text, yaml_error)}"]) from yaml_error
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: (top level): must be a mapping of keys"])
    problems = _Problems(filename, lines)
    _resolve_file_urls(data, base_dir or Path.cwd())
    _read_deprecated(data, problems)
    _cross_check(data, problems)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        errors = [(_clean_loc(tuple(err["loc"])), err) for err in e.errors()]
        for loc, error in errors:
            # A union (id_from: name | {regex}) reports every branch; the branch that got
            # further (a deeper location) is the one the author meant.
            if any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in errors):
                continue
            problems.add(loc, _message_for(error))
    if problems.items or settings is None:
        raise ConfigError(problems.sorted())
    return settings


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file to read: ``path``, else $AGGREGATOR_CONFIG, else config/sources.yaml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the config file (see ``config_path``); $AGGREGATOR_DATABASE_URL overrides its
    ``database``."""
    chosen = config_path(path)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as e:
        # run from another folder, the relative default is not there: say where it looked
        relative = "" if chosen.is_absolute() else " (relative to the current folder)"
        raise ConfigError(
            [
                f"{chosen}:0: cannot read the config file: {e.strerror or e}; looked for "
                f"{chosen.absolute()}{relative}; name the file with --config PATH or "
                f"{CONFIG_ENV}=PATH"
            ]
        ) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"{chosen}:0: the config file is not UTF-8: {e.reason}"]) from e
    settings = parse_settings(text, str(chosen), chosen.resolve().parent)
    override = os.environ.get(DATABASE_ENV)
    if override:
        settings = settings.model_copy(update={"database": override})
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if token:
        if len(token) < 16:
            raise ConfigError(
                [f"${ADMIN_TOKEN_ENV}: the admin token must be 16 characters or more"]
            )
        server = settings.server.model_copy(update={"admin_token": token})
        settings = settings.model_copy(update={"server": server})
    return settings


def json_schema() -> dict[str, Any]:
    schema = Settings.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aggregator configuration"
    return schema
