"""Deterministic synthetic feed corpus for the ingest benchmark.

Writes N feeds of M items each (half RSS 2.0, half Atom 1.0) plus a manifest and,
optionally, an aggregator config listing every feed as an HTTP source.

Feeds are paired (feed 2k is RSS, feed 2k+1 is Atom): within each pair, M // 10
items are shared, i.e. the same infoCode, title, body, author and date appear in
both feeds. So 10% of all item slots belong to items that appear in two feeds and
unique items = N*M - (N // 2) * (M // 10).

Usage: python bench/corpus.py --out DIR [--feeds 1000] [--items 50] [--seed 42]
                              [--port 8080] [--config PATH --database PATH]
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

LINK_PREFIX = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW"
CST = timezone(timedelta(hours=8))
BASE_TIME = datetime(2024, 6, 28, 18, 0, 0, tzinfo=CST)
INFOCODE_BASE = 202406280000000000  # 18 digits; the item serial is added to it

WORDS: tuple[str, ...] = tuple(
    """
    央行 降准 降息 利率 汇率 人民币 美元 欧元 日元 港元 黄金 原油 白银 铜价 铁矿石 螺纹钢 大豆
    玉米 生猪 棉花 天然气 煤炭 电力 光伏 风电 储能 锂电池 新能源 汽车 芯片 半导体 人工智能 算力
    大模型 机器人 云计算 数据中心 通信 券商 银行 保险 信托 基金 公募 私募 理财 债券 国债 地方债
    可转债 股票 指数 上证 深证 创业板 科创板 北交所 港股 美股 纳指 道指 标普 恒生 沪深 两市 成交额
    主力 资金 北向 南向 融资 融券 杠杆 估值 市盈率 业绩 财报 营收 净利润 毛利率 分红 回购 增持
    减持 解禁 定增 并购 重组 上市 退市 停牌 复牌 涨停 跌停 反弹 回调 震荡 突破 新高 新低 板块
    龙头 题材 概念 赛道 行业 产业链 供应链 消费 零售 白酒 医药 医疗 创新药 疫苗 地产 房企 楼市
    土地 基建 水泥 钢铁 有色 化工 军工 航运 港口 航空 机场 旅游 酒店 餐饮 家电 手机 面板 传媒
    游戏 影视 教育 农业 种业 养殖 环保 水务 燃气 电网 特高压 核电 氢能 充电桩 物流 快递 电商
    平台 直播 出口 进口 外贸 关税 顺差 通胀 通缩 物价 就业 工资 社保 养老金 财政 税收 专项债
    预算 赤字 货币 流动性 逆回购 中期借贷 贷款 存款 信贷 社融 货币供应 外汇 储备 跨境 开放 改革
    监管 证监会 央企 国企 民企 外资 政策 会议 部署 发布 通知 意见 方案 规划 目标 数据 统计 调查
    报告 研报 评级 目标价 买入 卖出 持有 看多 看空 预期 超预期 不及预期 同比 环比 增长 下降 回升
    放缓 企稳 改善 承压 分化 修复 扩张 收缩 景气 需求 供给 库存 价格 成本 利润 现金流 负债 资产
    投资者 股东 董事会 高管 公告 问询函 年报 半年报 季报 快讯 早盘 午盘 收盘 夜盘 盘前 盘后 本周
    上周 本月 全年 明年 今年 首日 首次 再度 持续 全面 加快 推进 落地 实施 优化 调整 稳定 提振
    """.split()  # noqa: SIM905 - a word list reads better as one string
)

OUTLETS: tuple[str, ...] = (
    "上海证券报",
    "中国证券报",
    "证券时报",
    "证券日报",
    "经济参考报",
    "第一财经",
    "21世纪经济报道",
    "经济观察报",
    "每日经济新闻",
    "中国经营报",
    "新京报",
    "财新网",
    "界面新闻",
    "澎湃新闻",
    "新华社",
    "人民日报",
    "央视财经",
    "中国新闻网",
    "中国基金报",
    "中国经济网",
    "金融时报",
    "期货日报",
    "华夏时报",
    "北京商报",
    "南方都市报",
    "时代周报",
    "券商中国",
    "财联社",
    "智通财经",
    "格隆汇",
    "东方财富研究中心",
    "新浪财经",
    "腾讯财经",
    "网易财经",
    "凤凰财经",
    "和讯网",
    "证券市场周刊",
    "国际金融报",
    "上海金融报",
    "投资快报",
)


@dataclass(frozen=True)
class Item:
    info_code: str
    title: str
    body: str
    author: str
    published: datetime

    @property
    def link(self) -> str:
        return LINK_PREFIX + self.info_code


@dataclass(frozen=True)
class CorpusInfo:
    directory: str
    feeds: int
    items_per_feed: int
    item_slots: int
    unique_items: int
    shared_items: int
    total_bytes: int
    seed: int
    feed_files: list[str]


def make_title(rng: random.Random) -> str:
    return "".join(rng.choices(WORDS, k=rng.randint(4, 8)))


def make_body(rng: random.Random) -> str:
    """HTML of <p> paragraphs whose UTF-8 size is between 1 and 2 KB."""
    target = rng.randint(1024, 2048)
    paragraphs: list[str] = []
    size = 0
    while True:
        text = "，".join("".join(rng.choices(WORDS, k=rng.randint(3, 6))) for _ in range(4)) + "。"
        para = f"<p>{text}</p>"
        para_size = len(para.encode("utf-8"))
        if size + para_size > target and size >= 1024:
            break
        paragraphs.append(para)
        size += para_size
    return "".join(paragraphs)


def make_item(rng: random.Random, serial: int) -> Item:
    return Item(
        info_code=f"{INFOCODE_BASE + serial:018d}",
        title=make_title(rng),
        body=make_body(rng),
        author=rng.choice(OUTLETS),
        published=BASE_TIME - timedelta(minutes=7 * serial, seconds=rng.randint(0, 59)),
    )


def feed_name(index: int, width: int) -> str:
    return f"feed-{index + 1:0{width}d}"


def rss_document(name: str, items: list[Item]) -> str:
    entries = "".join(
        "<item>"
        f"<title>{escape(it.title)}</title>"
        f"<link>{escape(it.link)}</link>"
        f'<guid isPermaLink="true">{escape(it.link)}</guid>'
        f"<pubDate>{format_datetime(it.published)}</pubDate>"
        f"<dc:creator>{escape(it.author)}</dc:creator>"
        f"<description><![CDATA[{it.body}]]></description>"
        "</item>\n"
        for it in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f"<channel><title>财经快讯 {name}</title>"
        f"<link>http://finews.zning.xyz/{name}</link>"
        f"<description>合成基准测试源 {name}</description>"
        f"<lastBuildDate>{format_datetime(BASE_TIME)}</lastBuildDate>\n"
        f"{entries}</channel></rss>\n"
    )


def atom_document(name: str, items: list[Item]) -> str:
    entries = "".join(
        "<entry>"
        f"<title>{escape(it.title)}</title>"
        f'<link rel="alternate" href="{escape(it.link)}"/>'
        f"<id>{escape(it.link)}</id>"
        f"<published>{it.published.isoformat()}</published>"
        f"<updated>{it.published.isoformat()}</updated>"
        f"<author><name>{escape(it.author)}</name></author>"
        f'<content type="html">{escape(it.body)}</content>'
        "</entry>\n"
        for it in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"<title>财经快讯 {name}</title>"
        f'<link rel="alternate" href="http://finews.zning.xyz/{name}"/>'
        f"<id>urn:bench:{name}</id>"
        f"<updated>{BASE_TIME.isoformat()}</updated>\n"
        f"{entries}</feed>\n"
    )


def build_feed_items(feeds: int, per_feed: int, seed: int) -> list[list[Item]]:
    """Items for each feed; pairs (2k, 2k+1) share per_feed // 10 items."""
    rng = random.Random(seed)
    shared_per_pair = per_feed // 10
    serial = 0
    result: list[list[Item]] = []
    for pair_start in range(0, feeds, 2):
        members = [i for i in (pair_start, pair_start + 1) if i < feeds]
        shared: list[Item] = []
        if len(members) == 2:
            shared = [make_item(rng, serial + k) for k in range(shared_per_pair)]
            serial += shared_per_pair
        for _ in members:
            own_count = per_feed - len(shared)
            own = [make_item(rng, serial + k) for k in range(own_count)]
            serial += own_count
            merged = sorted(shared + own, key=lambda it: it.published, reverse=True)
            result.append(merged)
    return result


def generate(out_dir: Path, feeds: int = 1000, per_feed: int = 50, seed: int = 42) -> CorpusInfo:
    """Write feed-XXXX.xml files and manifest.json into out_dir; return a summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(feeds)))
    codes: set[str] = set()
    files: list[str] = []
    total_bytes = 0
    for index, items in enumerate(build_feed_items(feeds, per_feed, seed)):
        name = feed_name(index, width)
        render = rss_document if index % 2 == 0 else atom_document
        data = render(name, items).encode("utf-8")
        (out_dir / f"{name}.xml").write_bytes(data)
        files.append(f"{name}.xml")
        total_bytes += len(data)
        codes.update(it.info_code for it in items)
    slots = feeds * per_feed
    info = CorpusInfo(
        directory=str(out_dir.resolve()),
        feeds=feeds,
        items_per_feed=per_feed,
        item_slots=slots,
        unique_items=len(codes),
        shared_items=slots - len(codes),
        total_bytes=total_bytes,
        seed=seed,
        feed_files=files,
    )
    (out_dir / "manifest.json").write_text(json.dumps(asdict(info), indent=1), encoding="utf-8")
    return info


def feed_urls(info: CorpusInfo, port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/{name}" for name in info.feed_files]


def write_config(
    path: Path,
    info: CorpusInfo,
    port: int,
    database: Path,
    workers: int = 16,
    allow_networks: bool = True,
) -> None:
    """Write an aggregator config YAML listing every feed as an HTTP source. The corpus
    is served on 127.0.0.1, which a fetch reaches only when allowed; ``allow_networks``
    False writes the allowance as commits before that key read it (bench/abtest.py)."""
    allowance = "allow_networks: [127.0.0.0/8]"
    if not allow_networks:
        allowance = "allow_private_networks: true"
    lines = [
        f"database: {json.dumps('sqlite:///' + str(database.resolve()))}",
        "timezone: Asia/Shanghai",
        allowance,
        "defaults:",
        "  interval: 30m",
        "  timeout_seconds: 20",
        f"  workers: {workers}",
        "categories: {}",
        "sources:",
    ]
    for name, url in zip(info.feed_files, feed_urls(info, port), strict=True):
        lines += [
            f"  - id: {name.removesuffix('.xml')}",
            f"    url: {url}",
            "    category_from: author",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the feed files")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--port", type=int, default=8080, help="port used in the config URLs")
    parser.add_argument("--config", type=Path, help="also write an aggregator config here")
    parser.add_argument("--database", type=Path, help="sqlite file for the config")
    args = parser.parse_args(argv)
    info = generate(args.out, args.feeds, args.items, args.seed)
    if args.config:
        database = args.database or args.config.parent / "bench.db"
        write_config(args.config, info, args.port, database)
    print(
        f"{info.feeds} feeds, {info.item_slots} item slots, {info.unique_items} unique items, "
        f"{info.total_bytes / 1e6:.1f} MB in {info.directory}"
    )


if __name__ == "__main__":
    main()
