"""Which charset a body is in (aggregator/ingest/encodings.py): declared charsets that
fit, UTF-16 and UTF-32 without a byte-order mark, and the fallback with its warning."""

from __future__ import annotations

import pytest

from aggregator.ingest.encodings import decode_body


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        ("<?xml version='1.0' encoding='gb2312'?><a>镕</a>".encode("gb18030"), None, "gb18030"),
        ("<?xml version='1.0' encoding='GBK'?><a>中</a>".encode("gb18030"), None, "gb18030"),
        ("<a>中</a>".encode("gb18030"), "text/xml; charset=gb2312", "gb18030"),
        ("<?xml version='1.0' encoding='big5'?><a>證券</a>".encode("big5"), None, "big5hkscs"),
        ("<?xml version='1.0' encoding='iso-8859-1'?><a>中文</a>".encode(), None, "utf-8"),
        (b"\xef\xbb\xbf<a>x</a>", None, "utf-8-sig"),
    ],
    ids=["gb2312 read as gb18030", "gbk", "header charset", "big5", "mislabelled latin-1", "bom"],
)
def test_decode_body(body: bytes, content_type: str | None, encoding: str) -> None:
    text, used, warning = decode_body(body, content_type)
    assert used == encoding
    assert "<a>" in text
    assert "\ufffd" not in text
    assert warning is None  # a declaration that fits, or UTF-8: nothing to say


LATIN = "<rss version='2.0'><channel><title>t</title><item><title>{}</title></item></channel></rss>"
CHINESE = "<rss><channel><title>国产编码：上证指数收涨，A股成交放量</title></channel></rss>"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "text", "warning"),
    [
        pytest.param(
            LATIN.format("simulações").encode("latin-1"),
            None,
            "cp1252",
            "simulações",
            "charset: none declared, and the bytes are not UTF-8; read as windows-1252",
            id="latin-1 undeclared (not cp1257)",
        ),
        pytest.param(
            LATIN.format("très").encode("latin-1"),
            None,
            "cp1252",
            "très",
            "charset: none declared, and the bytes are not UTF-8; read as windows-1252",
            id="latin-1 undeclared (not cp1250)",
        ),
        pytest.param(
            LATIN.format("Märkte für Anleger").encode("latin-1"),
            None,
            "cp1252",
            "Märkte für Anleger",
            "charset: none declared, and the bytes are not UTF-8; read as windows-1252",
            id="German, valid GB18030 too",
        ),
        pytest.param(
            LATIN.format("“quoted” – \udc81").encode("cp1252", errors="surrogateescape"),
            None,
            "cp1252",
            "“quoted” – \ufffd",
            "charset: none declared, and the bytes are not UTF-8; read as windows-1252",
            id="windows-1252 quotes, undefined byte",
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="utf-8"?>' + LATIN.format("très").encode("latin-1"),
            None,
            "cp1252",
            "très",
            "charset: the bytes are not UTF-8 as declared; read as windows-1252",
            id="invalid UTF-8 declared UTF-8",
        ),
        pytest.param(
            LATIN.format("très").encode("latin-1"),
            "application/rss+xml; charset=UTF-8",
            "cp1252",
            "très",
            "charset: the bytes are not UTF-8 as declared; read as windows-1252",
            id="invalid UTF-8, UTF-8 in the header",
        ),
        pytest.param(
            CHINESE.replace("<title>", "<title>\x00" + "上证指数收涨。" * 3)
            .encode()
            .replace(b"\x00", b"\xff"),
            "text/xml; charset=utf-8",
            "utf-8",
            "收涨，A股成交放量",
            "charset: the bytes are not UTF-8 as declared; read as UTF-8, "
            "1 undecodable sequence replaced",
            id="UTF-8 but for one byte",
        ),
        pytest.param(
            CHINESE.encode("gbk"),
            None,
            "gb18030",
            "国产编码：上证指数收涨，A股成交放量",
            "charset: none declared, and the bytes are not UTF-8; read as GB18030",
            id="GBK undeclared",
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="utf-8"?>' + CHINESE.encode("gbk"),
            None,
            "gb18030",
            "上证指数",
            "charset: the bytes are not UTF-8 as declared; read as GB18030",
            id="GBK declared UTF-8",
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="x-unknown"?>' + CHINESE.encode("gbk"),
            None,
            "gb18030",
            "上证指数",
            "charset: the bytes are neither x-unknown as declared, nor UTF-8; read as GB18030",
            id="unknown charset declared",
        ),
        pytest.param(
            "<rss version='2.0'><channel><title>ascii</title></channel></rss>".encode("utf-16-le"),
            None,
            "utf-16-le",
            "<title>ascii</title>",
            None,
            id="UTF-16LE without BOM",
        ),
        pytest.param(
            "<rss><title>x</title></rss>".encode("utf-16-be"),
            "text/xml",
            "utf-16-be",
            "<title>x</title>",
            None,
            id="UTF-16BE without BOM",
        ),
        pytest.param(
            "<rss><title>x</title></rss>".encode("utf-32-le"),
            None,
            "utf-32-le",
            "<title>x</title>",
            None,
            id="UTF-32LE without BOM",
        ),
        pytest.param(
            "\n<rss><title>中</title></rss>".encode("utf-32-be"),
            None,
            "utf-32-be",
            "<title>中</title>",
            None,
            id="UTF-32BE without BOM, white space first",
        ),
    ],
)
def test_decode_body_when_nothing_declared_fits(
    body: bytes, content_type: str | None, encoding: str, text: str, warning: str | None
) -> None:
    """Neither a declaration nor UTF-8 fits: GB18030 for bytes that read as Chinese in
    it, windows-1252 otherwise, with a warning naming it (issue 13); UTF-16 and UTF-32
    are told by their zero bytes."""
    decoded = decode_body(body, content_type)
    assert (decoded.encoding, decoded.warning) == (encoding, warning)
    assert text in decoded.text
