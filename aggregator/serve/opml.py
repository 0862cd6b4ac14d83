"""``GET /feeds.opml``: every output feed in one OPML 2.0 file (publish/opml.py), so a
reader subscribes to all of them in one step."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from aggregator.publish.opml import OPML_CONTENT_TYPE, output_feed_groups, render_opml
from aggregator.publish.pages import SITE_TITLE
from aggregator.publish.publisher import Publisher


def feeds_opml_response(request: Request, publisher: Publisher, base: str) -> Response:
    groups = output_feed_groups(list(publisher.categories().values()), base)
    body = render_opml(SITE_TITLE, groups, datetime.now(UTC))
    return Response(body, media_type=OPML_CONTENT_TYPE, headers={"Cache-Control": "no-cache"})
