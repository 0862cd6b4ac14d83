"""Sanitizing untrusted HTML (sanitize.py): what survives, and forbidden characters."""

from __future__ import annotations

from aggregator.sanitize import sanitize_html


def test_scripts_and_handlers_go_and_relative_links_resolve() -> None:
    html = '<p onclick="x()">a <a href="/b.html">b</a><script>alert(1)</script></p>'
    assert sanitize_html(html, "http://news.example/a/1.html") == (
        '<p>a <a href="http://news.example/b.html" rel="noopener noreferrer">b</a></p>'
    )


def test_a_lone_surrogate_is_dropped_not_an_error() -> None:
    """nh3 takes UTF-8 only: text with a lone surrogate is cleaned without it."""
    assert sanitize_html("<p>a\ud800b</p>") == "<p>ab</p>"


def test_characters_xml_forbids_never_come_out() -> None:
    assert sanitize_html("<p>a\x01b&#1;c\ufffe</p>") == "<p>abc</p>"
