"""Baseline fetcher: GET every URL with `requests`, bytes only, no parsing.

Run as a child process by bench/ingest.py so that its wall time and peak RSS are
measured the same way as newsboat's and the aggregator's:

    python bench/rawfetch.py --urls urls.txt --save-validators v.json      # cold
    python bench/rawfetch.py --urls urls.txt --use-validators v.json       # warm (304s)

Prints one JSON line: {"requests": n, "status": {"200": n}, "bytes": n, "errors": n}.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

TIMEOUT_S = 20.0
_local = threading.local()


def session() -> requests.Session:
    """One pooled Session per worker thread."""
    sess: requests.Session | None = getattr(_local, "session", None)
    if sess is None:
        sess = requests.Session()
        sess.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=4))
        _local.session = sess
    return sess


def fetch(url: str, validators: dict[str, str]) -> tuple[str, int, int, dict[str, str]]:
    """Return (url, status, body bytes, validators for the next request); status -1 = error."""
    headers: dict[str, str] = {}
    if "etag" in validators:
        headers["If-None-Match"] = validators["etag"]
    if "last_modified" in validators:
        headers["If-Modified-Since"] = validators["last_modified"]
    try:
        resp = session().get(url, headers=headers, timeout=TIMEOUT_S)
        body = resp.content
    except requests.RequestException:
        return url, -1, 0, {}
    found = {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
    return url, resp.status_code, len(body), {k: v for k, v in found.items() if v}


def run(urls: list[str], old: dict[str, dict[str, str]], threads: int) -> dict[str, object]:
    status: Counter[str] = Counter()
    total_bytes = 0
    new: dict[str, dict[str, str]] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for url, code, size, validators in pool.map(lambda u: fetch(u, old.get(u, {})), urls):
            status[str(code)] += 1
            total_bytes += size
            new[url] = validators or old.get(url, {})
    return {"requests": len(urls), "status": dict(status), "bytes": total_bytes, "validators": new}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="GET every URL, bytes only")
    parser.add_argument("--urls", type=Path, required=True, help="file with one URL per line")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--save-validators", type=Path, help="write ETag/Last-Modified here")
    parser.add_argument("--use-validators", type=Path, help="send conditional headers from here")
    args = parser.parse_args(argv)
    urls = [u for u in args.urls.read_text(encoding="utf-8").split() if u]
    old: dict[str, dict[str, str]] = {}
    if args.use_validators:
        old = json.loads(args.use_validators.read_text(encoding="utf-8"))
    result = run(urls, old, args.threads)
    validators = result.pop("validators")
    if args.save_validators:
        args.save_validators.write_text(json.dumps(validators), encoding="utf-8")
    status = result["status"]
    result["errors"] = status.get("-1", 0) if isinstance(status, dict) else 0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
