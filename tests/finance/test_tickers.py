"""Ticker recognition on a labelled sample of sentences (tests/fixtures/tickers/), one
case a row, and its precision and recall over the whole sample (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.errors import ConfigError
from aggregator.finance.tickers import (
    EMPTY_MATCHER,
    build_matcher,
    exchange_of,
    find_tickers,
    normalise_code,
    parse_names_csv,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "tickers" / "sentences.tsv"
NAMES = ROOT / "config" / "ticker_names.csv"


def _sample() -> list[tuple[str, tuple[str, ...]]]:
    rows = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        text, codes, *miss = line.split("\t")
        rows.append((text, () if codes == "-" else tuple(sorted(codes.split())), miss))
    return rows


LABELLED = _sample()
ROWS = [(text, codes) for text, codes, _ in LABELLED]
MATCHER = build_matcher(parse_names_csv(NAMES.read_text(encoding="utf-8"), str(NAMES)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(text, codes, id=text[:24], marks=[pytest.mark.xfail(strict=True)] * len(miss))
        for text, codes, miss in LABELLED
    ],
)
def test_labelled_sentence(text: str, expected: tuple[str, ...]) -> None:
    assert find_tickers(text, MATCHER) == expected


def precision_recall(rows: list[tuple[str, tuple[str, ...]]]) -> tuple[float, float]:
    true_pos = false_pos = false_neg = 0
    for text, expected in rows:
        found = set(find_tickers(text, MATCHER))
        true_pos += len(found & set(expected))
        false_pos += len(found - set(expected))
        false_neg += len(set(expected) - found)
    return true_pos / (true_pos + false_pos), true_pos / (true_pos + false_neg)


def test_sample_precision_and_recall() -> None:
    assert len(ROWS) >= 80
    assert sum(1 for _, codes in ROWS if not codes) >= 25  # the traps
    precision, recall = precision_recall(ROWS)
    assert precision >= 0.98
    assert recall >= 0.95


def test_precision_and_recall_measure_misses() -> None:
    # the measure itself can fail: a wrong label lowers both
    precision, recall = precision_recall([("贵州茅台(600519)", ("000858.SZ",))])
    assert (precision, recall) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("code", "exchange"),
    [("600519", "SH"), ("688981", "SH"), ("900901", "SH"), ("000001", "SZ"),
     ("300750", "SZ"), ("200596", "SZ"), ("430047", "BJ"), ("835185", "BJ"),
     ("920001", "BJ"), ("510300", None), ("123456", None), ("999999", None)],
)  # fmt: skip
def test_exchange_ranges(code: str, exchange: str | None) -> None:
    assert exchange_of(code) == exchange


@pytest.mark.parametrize(
    ("written", "code"),
    [("600519", "600519.SH"), ("SH600519", "600519.SH"), ("600519.sh", "600519.SH"),
     ("0700.HK", "00700.HK"), ("AAPL.US", "AAPL.US"), ("600519.SZ", None), ("12", None)],
)  # fmt: skip
def test_normalise_code(written: str, code: str | None) -> None:
    assert normalise_code(written) == code


def test_names_without_a_matcher_are_not_found() -> None:
    assert find_tickers("贵州茅台发布公告", EMPTY_MATCHER) == ()


def test_ten_thousand_names_build_one_automaton() -> None:
    names = [(f"测试公司{i}号", f"{600000 + i % 4000:06d}.SH") for i in range(10_000)]
    matcher = build_matcher([*names, ("贵州茅台", "600519.SH")])
    assert matcher.size == 10_001
    assert find_tickers("贵州茅台与测试公司7号", matcher) == ("600007.SH", "600519.SH")


def test_names_file_errors_name_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_names_csv("name,code\n贵州茅台,600519\n坏,123\n", "names.csv")
    assert caught.value.problems == ["names.csv:3: ticker_names: bad row '123'"]
    with pytest.raises(ConfigError):
        parse_names_csv("title,symbol\n", "names.csv")
