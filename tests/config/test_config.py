"""Configuration: a table of broken configs with their exact one-line messages, the JSON
Schema, file: URLs and environment overrides."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import jsonschema
import pytest
import yaml

from aggregator.addresses import PRIVATE_NETWORKS
from aggregator.config.durations import parse_duration
from aggregator.config.settings import json_schema, load_settings, parse_settings
from aggregator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD_SOURCE = "  - {id: a, url: 'http://x/feed', category: news}\n"
HEAD = "categories:\n  news: {title: 新闻}\nsources:\n"

BROKEN = [
    (
        "unknown top-level key",
        "timezon: Asia/Shanghai\n" + HEAD + GOOD_SOURCE,
        ["c.yaml:1: timezon: unknown key (did you mean 'timezone'?)"],
    ),
    (
        "unknown source key",
        HEAD + "  - id: a\n    url: http://x/feed\n    category: news\n    urll: http://y\n",
        ["c.yaml:7: sources[0].urll: unknown key (did you mean 'url'?)"],
    ),
    (
        "bad URL scheme",
        HEAD + "  - {id: a, url: 'ftp://x/feed', category: news}\n",
        ["c.yaml:4: sources[0].url: bad URL 'ftp://x/feed' (use http://, https:// or file:)"],
    ),
    (
        "URL without host",
        HEAD + "  - {id: a, url: 'http://', category: news}\n",
        ["c.yaml:4: sources[0].url: bad URL 'http://' (use http://, https:// or file:)"],
    ),
    (
        "duplicate id",
        HEAD + GOOD_SOURCE + "  - id: a\n    url: http://y/feed\n    category: news\n",
        ["c.yaml:5: sources[1].id: duplicate source id 'a' (first at line 4)"],
    ),
    (
        "unknown category",
        HEAD + "  - {id: a, url: 'http://x/feed', category: sports}\n",
        ["c.yaml:4: sources[0].category: unknown category 'sports' (known: news)"],
    ),
    (
        "bad interval",
        HEAD + "  - id: a\n    url: http://x/feed\n    category: news\n    interval: 5x\n",
        [
            "c.yaml:7: sources[0].interval: bad duration '5x' "
            "(use a number and a unit: 90s, 5m, 1h, 1d)"
        ],
    ),
    (
        "zero interval",
        HEAD + "  - id: a\n    url: http://x/feed\n    category: news\n    interval: 0s\n",
        ["c.yaml:7: sources[0].interval: bad duration '0s' (must be more than zero)"],
    ),
    (
        "no category at all",
        HEAD + "  - {id: a, url: 'http://x/feed'}\n",
        [
            "c.yaml:4: sources[0]: needs category or category_from "
            "(for type json: fields.category_from)"
        ],
    ),
    (
        "missing url",
        HEAD + "  - {id: a, category: news}\n",
        ["c.yaml:4: sources[0].url: missing required key"],
    ),
    (
        "bad type",
        HEAD + "  - {id: a, url: 'http://x/f', category: news, type: csv}\n",
        [
            "c.yaml:4: sources[0].type: Input should be "
            "'auto', 'rss', 'atom', 'jsonfeed', 'json' or 'html'"
        ],
    ),
    (
        "bad timezone",
        "timezone: Mars/Olympus\n" + HEAD + GOOD_SOURCE,
        [
            "c.yaml:1: timezone: unknown timezone 'Mars/Olympus' "
            "(use an IANA name such as Asia/Shanghai)"
        ],
    ),
    (
        "bad cron",
        HEAD + "  - {id: a, url: 'http://x/f', category: news, cron: 'every day'}\n",
        [
            "c.yaml:4: sources[0].cron: bad cron expression 'every day': "
            "Wrong number of fields; got 2, expected 5"
        ],
    ),
    (
        "interval and cron",
        HEAD + "  - {id: a, url: 'http://x/f', category: news, cron: '*/5 * * * *', "
        "interval: 5m}\n",
        ["c.yaml:4: sources[0].cron: give interval or cron, not both"],
    ),
    (
        "bad slug",
        "categories:\n  Big News: {title: x}\nsources: []\n",
        [
            "c.yaml:2: categories.Big News: bad category slug 'Big News' "
            "(use [a-z0-9-], e.g. shanghaizhengquanbao)"
        ],
    ),
    (
        "json without fields",
        HEAD + "  - {id: a, url: 'http://x/f', category: news, type: json, items_path: r}\n",
        ["c.yaml:4: sources[0]: type json needs fields (at least id and title)"],
    ),
    (
        "content_url without placeholder",
        HEAD + "  - id: a\n    url: http://x/f\n    category: news\n    type: json\n"
        "    items_path: r\n    fields: {id: i, title: t}\n    content_url: http://x/c\n"
        "    content_path: c\n",
        ["c.yaml:10: sources[0].content_url: content_url needs an {id} placeholder"],
    ),
    (
        "json keys on an RSS source",
        HEAD + "  - {id: a, url: 'http://x/f', category: news, items_path: record}\n",
        ["c.yaml:4: sources[0].items_path: items_path only applies to type: json"],
    ),
    (
        "bad id regex",
        HEAD + "  - {id: a, url: 'http://x/f', category: news, id_from: {regex: '('}}\n",
        [
            "c.yaml:4: sources[0].id_from.regex: bad regex '(': "
            "missing ), unterminated subpattern at position 0"
        ],
    ),
    (
        "bad source id",
        HEAD + "  - {id: 'a b', url: 'http://x/f', category: news}\n",
        ["c.yaml:4: sources[0].id: bad source id 'a b' (letters, digits, '.', '_', '-')"],
    ),
    (
        "not YAML",
        "sources: [\n",
        ["c.yaml:2: not valid YAML: expected the node content, but found '<stream end>'"],
    ),
    (
        "unclosed quote, closed by a later one",
        HEAD + '  - id: a\n    url: "http://x/feed\n    category: news\n'
        '  - {id: b, url: "http://y/feed", category: news}\n',
        [
            "c.yaml:5: not valid YAML: the quote opened on this line runs on to line 7: is its "
            "closing quote missing? (at line 7: expected <block end>, but found '<scalar>'): "
            "'url: \"http://x/feed'"
        ],
    ),
    (
        "unclosed quote to the end",
        HEAD + "  - id: a\n    url: 'http://x/feed\n    category: news\n",
        [
            "c.yaml:5: not valid YAML: the quote opened on this line is not closed "
            '(found unexpected end of stream): "url: \'http://x/feed"'
        ],
    ),
    (
        "key without a colon",
        HEAD + "  - id: a\n    url\n    category: news\n",
        [
            "c.yaml:5: not valid YAML: could not find expected ':' "
            "(scanning a simple key from here; at line 6): 'url'"
        ],
    ),
    (
        "unclosed bracket",
        "sources: [{id: a, url: 'http://x/feed', category: news}\ntimezone: UTC\n",
        [
            "c.yaml:1: not valid YAML: expected ',' or ']', but got '<scalar>' (parsing a flow "
            "sequence from here; at line 2): \"sources: [{id: a, url: 'http://x/feed', "
            'category: news}"'
        ],
    ),
    (
        "tab for indentation",
        HEAD + "  - id: a\n\turl: http://x/feed\n",
        [
            "c.yaml:5: not valid YAML: found character '\\t' that cannot start any token: "
            "'url: http://x/feed'"
        ],
    ),
    ("not a mapping", "- a\n- b\n", ["c.yaml:1: (top level): must be a mapping of keys"]),
    (
        "a network with host bits",
        "allow_networks: [10.0.0.1/8]\n" + HEAD + GOOD_SOURCE,
        [
            "c.yaml:1: allow_networks[0]: bad network '10.0.0.1/8': host bits set "
            "(did you mean 10.0.0.0/8?)"
        ],
    ),
    (
        "the metadata address allowed for a source",
        HEAD + "  - id: a\n    url: http://x/f\n    category: news\n"
        "    allow_networks: [10.0.0.0/8, 169.254.169.254]\n",
        [
            "c.yaml:7: sources[0].allow_networks[1]: 169.254.169.254/32 is link-local or a "
            "cloud metadata address, which cannot be allowed (a redirect there is how a feed "
            "URL reads cloud credentials)"
        ],
    ),
    (
        "the deprecated key beside its replacement",
        "allow_private_networks: true\nallow_networks: [10.0.0.0/8]\n" + HEAD + GOOD_SOURCE,
        [
            "c.yaml:1: allow_private_networks: deprecated and replaced by allow_networks: "
            "give only allow_networks"
        ],
    ),
    (
        "several problems, all reported in file order",
        "timezon: x\n" + HEAD + "  - {id: a, url: 'ftp://x', category: nope}\n",
        [
            "c.yaml:1: timezon: unknown key (did you mean 'timezone'?)",
            "c.yaml:5: sources[0].category: unknown category 'nope' (known: news)",
            "c.yaml:5: sources[0].url: bad URL 'ftp://x' (use http://, https:// or file:)",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_config_messages(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, "c.yaml")
    assert caught.value.problems == expected


def test_an_unclosed_quote_is_reported_at_its_own_line(tmp_path: Path) -> None:
    """The bundled config with one closing quote dropped: PyYAML gives up lines later,
    where the next quote character closes the value; the report names the line to fix."""
    lines = (ROOT / "config" / "sources.yaml").read_text(encoding="utf-8").splitlines()
    broken = next(i for i, line in enumerate(lines) if line.strip().startswith("user_agent:"))
    lines[broken] = lines[broken].rstrip().removesuffix('"')
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:{broken + 1}: not valid YAML: the quote opened on this")
    assert problem.endswith(": " + repr(lines[broken].strip()))


def test_bundled_config_is_valid_and_uses_offline_samples() -> None:
    settings = load_settings(ROOT / "config" / "sources.yaml")
    enabled = [s for s in settings.sources if s.enabled]
    assert enabled
    assert all(s.url.startswith("file://") for s in enabled)
    for source in enabled:
        assert Path(source.url.removeprefix("file://")).exists(), source.url
    assert settings.categories["shanghaizhengquanbao"].title == "上海证券报新闻"
    assert settings.database == "sqlite:///data/aggregator.db"


def test_schema_accepts_the_bundled_config_and_rejects_typos() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = yaml.safe_load((ROOT / "config" / "sources.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)
    data["sources"][0]["urll"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    assert json.dumps(schema)


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + GOOD_SOURCE, encoding="utf-8")
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(path))
    monkeypatch.setenv("AGGREGATOR_DATABASE_URL", "postgresql://db/agg")
    settings = load_settings()
    assert settings.database == "postgresql://db/agg"
    assert settings.sources[0].id == "a"


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml")
    (line,) = caught.value.problems
    assert line == (
        f"{tmp_path / 'nope.yaml'}:0: cannot read the config file: No such file or "
        f"directory; looked for {tmp_path / 'nope.yaml'}; name the file with --config PATH "
        "or AGGREGATOR_CONFIG=PATH"
    )


def test_missing_default_says_where_it_looked_and_how_to_point_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # run from another folder than the checkout
    monkeypatch.delenv("AGGREGATOR_CONFIG", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == [
        "config/sources.yaml:0: cannot read the config file: No such file or directory; "
        f"looked for {tmp_path / 'config' / 'sources.yaml'} (relative to the current "
        "folder); name the file with --config PATH or AGGREGATOR_CONFIG=PATH"
    ]


def test_relative_file_urls_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        HEAD + "  - {id: a, url: 'file:samples/x.xml', category: news}\n", encoding="utf-8"
    )
    settings = load_settings(tmp_path / "c.yaml")
    assert settings.sources[0].url == (tmp_path / "samples" / "x.xml").as_uri()


def test_defaults_and_inheritance() -> None:
    settings = parse_settings(
        HEAD + GOOD_SOURCE + "  - {id: b, url: 'http://y/f', "
        "category: news, interval: 90s, timeout_seconds: 5}\n"
    )
    a, b = settings.sources
    assert a.effective_interval(settings.defaults) == timedelta(minutes=30)
    assert b.effective_interval(settings.defaults) == timedelta(seconds=90)
    assert b.effective_timeout(settings.defaults) == 5
    assert settings.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("3d", 259200), (45, 45)],
    ids=["seconds", "minutes", "hours", "combined", "days", "bare number"],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_allowed_networks_globally_and_per_source() -> None:
    settings = parse_settings(
        'allow_networks: [127.0.0.0/8, "::1", 10.1.2.3]\n'
        + HEAD
        + GOOD_SOURCE
        + "  - {id: b, url: 'http://y/f', category: news, allow_networks: [192.168.0.0/16]}\n"
    )
    assert settings.allow_networks == (
        ip_network("127.0.0.0/8"),
        ip_network("::1/128"),
        ip_network("10.1.2.3/32"),
    )
    assert settings.sources[0].allow_networks == ()
    assert settings.sources[1].allow_networks == (ip_network("192.168.0.0/16"),)
    assert settings.model_dump(mode="json")["allow_networks"] == [
        "127.0.0.0/8",
        "::1/128",
        "10.1.2.3/32",
    ]
    assert parse_settings(HEAD + GOOD_SOURCE).allow_networks == ()  # public only by default


@pytest.mark.parametrize(
    ("value", "networks", "logged"),
    [
        pytest.param(
            "true", PRIVATE_NETWORKS, 'read as allow_networks: ["127.0.0.0/8", "::1/128"', id="true"
        ),
        pytest.param("false", (), "false is now the default", id="false"),
    ],
)
def test_the_deprecated_allow_private_networks_still_loads(
    caplog: pytest.LogCaptureFixture, value: str, networks: object, logged: str
) -> None:
    """A config from before issue 13 loads, read in the new terms, with one line saying
    so (and where)."""
    with caplog.at_level(logging.WARNING, logger="aggregator.config.settings"):
        settings = parse_settings(
            f"timezone: Asia/Shanghai\nallow_private_networks: {value}\n" + HEAD + GOOD_SOURCE,
            "c.yaml",
        )
    assert settings.allow_networks == networks
    (record,) = caplog.records
    assert record.getMessage().startswith("c.yaml:2: allow_private_networks is deprecated: ")
    assert logged in record.getMessage()
