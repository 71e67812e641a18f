"""What a page says about itself: its title, author, date, site name and image.

trafilatura's `extract_metadata`, step for step, without the fields we do not store: the
categories, tags and licence searches scan the whole tree and took 5 of its 12 ms a page on
the eval corpus, a tenth of an extraction. The byline search, half of what was left, is
byline.py's. tests/test_extract_metadata.py checks that the fields we keep come out as
trafilatura's own function gives them, on pages written for it, a real one and every 33rd
page of the eval corpus.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from aggregator.extract.byline import page_byline

if TYPE_CHECKING:
    from lxml.html import HtmlElement
    from trafilatura.settings import Document

log = logging.getLogger(__name__)

# trafilatura.metadata.META_URL: the host a site name falls back to.
_SITE_FROM_URL = re.compile(r"https?://(?:www\.|w[0-9]+\.)?([^/]+)")


def page_metadata(tree: HtmlElement, url: str, date_params: dict[str, Any]) -> Document:
    """The page's metadata as trafilatura finds it (title, author, url, hostname, date,
    sitename, image, description), categories, tags and licence left empty."""
    # Imported here, like the rest of trafilatura: only worker processes need it.
    from courlan import extract_domain
    from htmldate import find_date
    from trafilatura.metadata import (
        examine_meta,
        extract_meta_json,
        extract_sitename,
        extract_title,
        extract_url,
    )

    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None  # a handle, not a name
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception as exc:  # trafilatura guards its JSON-LD reader the same way
        log.debug("the page's JSON-LD could not be read: %s", exc)
    if not metadata.title:
        metadata.title = extract_title(tree)
    if not metadata.author:
        metadata.author = page_byline(tree)
    if not metadata.url:
        metadata.url = extract_url(tree, url)
    if metadata.url:
        metadata.hostname = extract_domain(metadata.url, fast=True)
    date_config = {**date_params, "url": metadata.url}
    metadata.date = find_date(tree, **date_config)
    if not metadata.sitename:
        metadata.sitename = extract_sitename(tree)
    if metadata.sitename:
        site = metadata.sitename.lstrip("@")  # a Twitter handle
        if site and "." not in site and not site[0].isupper():
            site = site.title()
        metadata.sitename = site
    elif metadata.url and (host := _SITE_FROM_URL.match(metadata.url)):
        metadata.sitename = host[1]
    metadata.filedate = date_config.get("max_date")
    metadata.clean_and_trim()
    return metadata
