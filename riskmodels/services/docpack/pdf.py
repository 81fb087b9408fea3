"""Render a documentation pack's HTML as PDF with WeasyPrint, fetching nothing but the pack's own images.

The HTML carries user text (a model's description, column names, findings). Django escapes it,
and the fetcher below is the second wall: WeasyPrint asks it for every image, stylesheet and
font URL, and it serves only the images generated for this pack (``docpack:<name>.png``, from
memory) and refuses every other URL (http, https, file, data, ...) by raising, so a rendering
can never reach the network or the file system. Pure: no Django.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from weasyprint import HTML, URLFetcher
from weasyprint.urls import URLFetcherResponse

logger = logging.getLogger(__name__)

SCHEME = "docpack:"


def image_url(name: str) -> str:
    """Return the private URL under which the PDF renderer serves the pack's image ``name``."""
    return f"{SCHEME}{name}.png"


class RefusedFetch(ValueError):
    """A URL the pack's renderer will not fetch: anything but the pack's own images."""


class PackFetcher(URLFetcher):
    """Serve ``docpack:<name>.png`` from the pack's images in memory; refuse every other URL.

    ``asked`` lists every URL WeasyPrint asked for, ``refused`` those refused: the tests read them.
    """

    def __init__(self, images: Mapping[str, bytes]) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
        self.images = dict(images)
        self.asked: list[str] = []
        self.refused: list[str] = []

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        self.asked.append(url)
        name = url[len(SCHEME):-len(".png")] if url.startswith(SCHEME) and url.endswith(".png") else None
        if name is None or name not in self.images:
            self.refused.append(url)
            logger.warning("documentation pack renderer refused to fetch %.200s", url)
            raise RefusedFetch(f"the documentation pack renderer fetches only its own images, not {url[:200]!r}")
        return URLFetcherResponse(url, self.images[name], headers={"Content-Type": "image/png"})


def html_to_pdf(html: str, images: Mapping[str, bytes], *, fetcher: PackFetcher | None = None) -> tuple[bytes, int]:
    """Return the PDF of ``html`` (whose images are ``docpack:`` URLs of ``images``) and its page count."""
    fetcher = fetcher if fetcher is not None else PackFetcher(images)
    document = HTML(string=html, url_fetcher=fetcher).render()
    return document.write_pdf(), len(document.pages)
