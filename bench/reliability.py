"""Runs the broken-feed corpus (tests/hostile.py) and a seeded mutation fuzz of the parse
path, and writes the counts into docs/reliability.md (between the corpus markers).

    python bench/reliability.py [--mutations 3000] [--seed 1] [--no-write]

Corpus: every case is a source on a real local HTTP server, all fetched in one pass of the
real orchestrator into a fresh SQLite store; each is counted as stored (the feed was
usable), rejected (the fetch failed with one clear line), or crashed (an exception escaped,
or the outcome did not match the case's expectation). Fuzz: the fixture feeds mutated
(truncated, bytes flipped, ranges dropped or repeated, markup and control characters
inserted); ``parse_body`` must return a feed or raise ``ParseError``, and whatever it
returns must render to well-formed RSS, Atom and JSON Feed.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from aggregator.config.settings import parse_settings  # noqa: E402
from aggregator.errors import ParseError  # noqa: E402
from aggregator.ingest.decide import CategoryRule, plan_items  # noqa: E402
from aggregator.ingest.fetcher import Fetcher  # noqa: E402
from aggregator.ingest.fields import ParseRules  # noqa: E402
from aggregator.ingest.identity import identify  # noqa: E402
from aggregator.ingest.parser import parse_body  # noqa: E402
from aggregator.ingest.update import Context  # noqa: E402
from aggregator.model import (  # noqa: E402
    CategoryRef,
    ItemIntent,
    OutcomeKind,
    StoredItem,
)
from aggregator.publish.formats import get_renderer  # noqa: E402
from aggregator.publish.render import ChannelView, ItemView  # noqa: E402
from aggregator.runtime.scheduler import run_pass  # noqa: E402
from aggregator.slug import CategoryRegistry  # noqa: E402
from aggregator.store.sql import SqlStore  # noqa: E402
from tests.feedserver import serving  # noqa: E402
from tests.hostile import CASES, FEEDS  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- corpus:begin -->", "<!-- corpus:end -->"


def run_corpus() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, serving() as server:
        urls = {case.name: case.setup(server) for case in CASES}
        lines = "\n".join(f'  - {{id: {n}, url: "{u}", category: misc}}' for n, u in urls.items())
        settings = parse_settings(
            "allow_networks: [127.0.0.0/8]\n"
            "defaults: {interval: 10m, timeout_seconds: 1, total_timeout_seconds: 3, "
            f"workers: 12}}\ncategories: {{misc: {{title: 杂项}}}}\nsources:\n{lines}\n"
        )
        store = SqlStore(f"sqlite:///{tmp}/corpus.db")
        store.upgrade()
        ctx = Context(settings, store, Fetcher("reliability"), owner="reliability")
        try:
            outcomes, _ = run_pass(ctx)
            by_id = {o.source_id: o for o in outcomes}
            counts = {s.source_id: s.item_count for s in store.list_source_status()}
        finally:
            ctx.fetcher.close()
            store.close()
    for case in CASES:
        outcome = by_id.get(case.name)
        if outcome is None:
            verdict, line = "crashed", "no outcome recorded"
        elif outcome.kind is OutcomeKind.ERROR:
            line = outcome.error or ""
            expected = case.fails and outcome.error_class == case.error_class
            verdict = "rejected" if expected and "\n" not in line else "crashed"
        else:
            line = f"{counts.get(case.name, 0)} items stored"
            verdict = "stored" if counts.get(case.name) == case.stored else "crashed"
        rows.append({"case": case.name, "what": case.what, "verdict": verdict, "line": line})
    return rows


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        at = rng.randrange(len(out))
        kind = rng.randrange(6)
        if kind == 0:
            del out[at:]
        elif kind == 1:
            out[at] = rng.randrange(256)
        elif kind == 2:
            out[at:at] = rng.choice(
                [b"<", b"&", b"\x00", b"\x0b", b"]]>", b"&#xD800;", b"\xff\xfe"]
            )
        elif kind == 3:
            del out[at : at + rng.randint(1, 200)]
        elif kind == 4:
            out[at:at] = out[at : at + rng.randint(1, 200)]
        else:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(out)


def as_views(intents: list[ItemIntent], now: datetime) -> list[ItemView]:
    """The plan's items as the renderers see stored ones."""
    return [
        ItemView(
            item=StoredItem(
                item_id=n,
                stable_id=i.stable_id,
                seq=n,
                title=i.title,
                link=i.link,
                guid=i.guid,
                summary=i.summary,
                content=i.content,
                author=i.author,
                published_at=i.published_at,
                published_offset_minutes=i.published_offset_minutes,
                first_seen_at=now,
                updated_at=now,
                update_count=0,
                source_id="fuzz",
                category_slugs=("misc",),
            ),
            categories=(("misc", "杂项"),),
            source=None,
        )
        for n, i in enumerate(intents, 1)
    ]


def well_formed(feed_items: list[ItemView], title: str) -> None:
    channel = ChannelView(
        key="misc",
        title=title or "fuzz",
        description="fuzz",
        self_url="http://fuzz.example/feeds/misc.xml",
        html_url="http://fuzz.example/category/misc.html",
        feed_url_base="http://fuzz.example/feeds/misc",
        site_url="http://fuzz.example",
        language="zh-cn",
        ttl_minutes=10,
        updated=datetime.now(UTC),
    )
    for extension in ("xml", "atom"):
        etree.fromstring(get_renderer(extension).render(channel, feed_items))
    json.loads(get_renderer("json").render(channel, feed_items))


def run_fuzz(mutations: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    seeds = [p for p in sorted(FEEDS.iterdir()) if p.suffix in (".xml", ".rdf", ".rss", ".atom")]
    seeds += [
        p for p in sorted(FEEDS.iterdir()) if p.suffix == ".json" and "expected" not in p.name
    ]
    rules = ParseRules(
        kind="auto",
        base_url="http://fuzz.example/",
        source_tz=ZoneInfo("Asia/Shanghai"),
        category_from=None,
        items_path=None,
        fields=None,
        date_format=None,
    )
    tally: Counter[str] = Counter()
    fixed = CategoryRef("misc", "杂项")
    for _ in range(mutations):
        path = rng.choice(seeds)
        body = mutate(path.read_bytes(), rng)
        try:
            feed = parse_body(body, None, rules)
        except ParseError:
            tally["rejected"] += 1
            continue
        except Exception:
            tally["crashed"] += 1
            continue
        try:
            pairs, _ = identify(feed.items, "fuzz")
            now = datetime.now(UTC)
            plan = plan_items(pairs, {}, CategoryRule(fixed=fixed), CategoryRegistry(), now, UTC)
            well_formed(as_views(list(plan.intents), now), feed.title or "")
            tally["parsed"] += 1
        except Exception:
            tally["crashed"] += 1
    return tally


def render_section(rows: list[dict[str, Any]], fuzz: Counter[str], args: Any) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    verdicts = Counter(row["verdict"] for row in rows)
    out = [
        BEGIN,
        "## Broken-feed corpus",
        "",
        f"Written by `python bench/reliability.py --mutations {args.mutations} "
        f"--seed {args.seed}` at commit `{commit}` "
        f"({datetime.now(UTC).strftime('%Y-%m-%d')}). The same cases run in the test "
        "suite (`tests/test_hostile.py`, on SQLite and PostgreSQL) with stricter checks "
        "per case: the error line, the HTTP status, the backoff, nothing half-written, the "
        "last good items still served.",
        "",
        "| | cases | stored | rejected with a clear error | crashed |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| hostile sources (one pass, real server) | {len(rows)} | {verdicts['stored']} | "
        f"{verdicts['rejected']} | **{verdicts['crashed']}** |",
        f"| mutated feeds (parse, plan, render) | {sum(fuzz.values())} | {fuzz['parsed']} | "
        f"{fuzz['rejected']} | **{fuzz['crashed']}** |",
        "",
        "| case | what the source does | result | the line recorded |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        line = row["line"].replace("|", "\\|")
        out.append(f"| `{row['case']}` | {row['what']} | {row['verdict']} | {line} |")
    out += ["", END]
    return "\n".join(out)


def write_doc(section: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Reliability\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    rows = run_corpus()
    fuzz = run_fuzz(args.mutations, args.seed)
    section = render_section(rows, fuzz, args)
    print(section)
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    if not args.no_write:
        write_doc(section)
    crashed = sum(r["verdict"] == "crashed" for r in rows) + fuzz["crashed"]
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
