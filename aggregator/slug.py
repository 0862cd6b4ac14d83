"""Category slugs: media names (上海证券报, TechWeb, 安信国际证券(香港)) to ``[a-z0-9-]+``.

Pure functions. Han characters become toneless pinyin joined without separators, so
上海证券报 is ``shanghaizhengquanbao`` exactly as the original site's URLs had it; Latin
letters are lowercased with accents stripped; digits stay; everything else (spaces,
brackets, ·, punctuation, other scripts) folds into a single ``-``. The original site
produced ``21shijijingjibaodao  nancailicaitong`` (spaces in a URL),
``anxinguojizhengquan(xianggang)`` and two categories for ``TechWeb``/``Techweb``; these
rules give ``21shijijingjibaodao-nancailicaitong``, ``anxinguojizhengquan-xianggang`` and
one ``techweb``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aggregator.model import CategoryRef

MAX_SLUG_LENGTH = 80
_HAN_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+)")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_SHAPE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def is_valid_slug(text: str) -> bool:
    return len(text) <= MAX_SLUG_LENGTH and bool(_SLUG_SHAPE.match(text))


def _short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:length]


@functools.lru_cache(maxsize=4096)  # pure; every item of a feed asks for its outlet's key
def identity_key(name: str) -> str:
    """Two media names with the same key are the same outlet (TechWeb == Techweb ==
    ``Tech Web``): NFKC, casefolded, with spaces and punctuation removed."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    key = "".join(ch for ch in folded if ch.isalnum())
    # A name with no letter or digit at all ("..", "🚀") keeps its symbols instead: keys
    # are unique in the store, and one empty key for two such names lost the whole fetch.
    return key or "".join(folded.split())


@functools.cache
def _lazy_pinyin() -> Callable[[str], list[str]]:
    """pypinyin's ``lazy_pinyin``, imported on first use: 0.2 s, only when a name has Han.
    It copies its dictionaries on import unless told there will be no custom ones (its
    documented switch; we add none): 40 ms and the memory."""
    os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "1")
    from pypinyin import lazy_pinyin

    return lazy_pinyin


def _latin_part(text: str) -> str:
    # é -> e; a character with no ASCII letter in it (·, ¥, kana) becomes a separator.
    out = []
    for ch in text:
        ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        out.append(ascii_form.lower() if ascii_form else "-")
    return _NOT_SLUG.sub("-", "".join(out))


def slugify(name: str) -> str:
    """The slug of a media or category name; deterministic, always ``[a-z0-9-]+``."""
    text = unicodedata.normalize("NFKC", name).strip()
    pieces: list[str] = []
    for index, run in enumerate(_HAN_RUN.split(text)):
        if not run:
            continue
        if index % 2 == 1:  # a run of Han characters
            pieces.append("".join(_lazy_pinyin()(run)).lower())
        else:
            pieces.append(_latin_part(run))
    slug = _NOT_SLUG.sub("-", "".join(pieces)).strip("-")
    if not slug:
        # Nothing transliterable (emoji, kana only...): a stable hash keeps it addressable.
        return "c-" + _short_hash(name, 10)
    if len(slug) > MAX_SLUG_LENGTH:
        slug = slug[: MAX_SLUG_LENGTH - 7].rstrip("-") + "-" + _short_hash(name)
    return slug


def resolve_slug(name: str, taken: Mapping[str, str | None]) -> str:
    """The slug for ``name`` given the slugs already owned (slug -> owner's identity key,
    None for a configured category that accepts any name mapping to it).

    The same outlet always gets the same slug. Two different outlets whose names
    transliterate alike (中证网 and 中正网 are both ``zhongzhengwang``) do not merge: the one
    that arrives second gets ``zhongzhengwang-`` plus a hash of its name, which is
    deterministic, and the store keeps the mapping so it never changes afterwards.
    """
    key = identity_key(name)
    base = slugify(name)
    owner = taken.get(base, key)
    if owner is None or owner == key:
        return base
    length = 6
    while True:
        candidate = f"{base[: MAX_SLUG_LENGTH - length - 1]}-{_short_hash(key, length)}"
        owner = taken.get(candidate, key)
        if owner is None or owner == key:
            return candidate
        length += 2


@dataclass(slots=True)
class CategoryRegistry:
    """The categories the store knows: slug -> ref, slug -> owner key, key -> slug.

    An owner key of None marks a configured category that takes any name slugifying to it.
    """

    by_slug: dict[str, CategoryRef] = field(default_factory=dict)
    owners: dict[str, str | None] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)

    def copy(self) -> CategoryRegistry:
        return CategoryRegistry(dict(self.by_slug), dict(self.owners), dict(self.by_key))

    def add(self, ref: CategoryRef, owner_key: str | None) -> None:
        self.by_slug[ref.slug] = ref
        self.owners.setdefault(ref.slug, owner_key)
        if owner_key:
            self.by_key.setdefault(owner_key, ref.slug)

    def resolve(self, name: str, title_template: str) -> CategoryRef:
        """The category for a media name, registering a new one when needed."""
        display = " ".join(name.split())
        key = identity_key(display)
        if key in self.by_key:
            return self.by_slug[self.by_key[key]]
        slug = resolve_slug(display, self.owners)
        if slug in self.by_slug:
            ref = self.by_slug[slug]
        else:
            ref = CategoryRef(slug=slug, title=title_template.format(name=display), name=display)
        self.add(ref, key)
        return ref
