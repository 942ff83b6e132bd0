"""The docs site works opened from disk (file://) and served by a web server.

Builds the site with `mkdocs build --strict` (as `make docs` does) into a temporary directory, then
checks every internal link of every generated HTML page (href and src): it must name a file
(never a directory, which a browser shows as a listing from disk), and that file must exist; an
anchor must exist in the page it points into. The same links are then fetched from a local HTTP
server over the built site. Search must work from disk too: the offline plugin's inlined index and
the local iframe Worker shim (no script from a CDN).
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
MKDOCS = REPO / ".venv" / "bin" / "mkdocs"
SHIM = "assets/javascripts/iframe-worker-shim.js"


class _Links(HTMLParser):
    """Collects the href and src attributes of a page, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src"):
                self.links.append(value)
            elif name in ("id", "name"):
                self.ids.add(value)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _internal(link: str) -> bool:
    """A link into the site: no scheme (http:, mailto:, data:, ...) and no host."""
    parts = urlsplit(link)
    return not parts.scheme and not parts.netloc and not link.startswith("//")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MKDOCS.exists():
        pytest.skip(f"{MKDOCS} not found: run 'make setup'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return out


@pytest.fixture(scope="module")
def pages(site: Path) -> dict[Path, _Links]:
    found = {page: _parse(page) for page in sorted(site.rglob("*.html"))}
    assert site / "index.html" in found
    return found


def _internal_links(pages: dict[Path, _Links], *, from_disk: bool) -> Iterator[tuple[Path, str]]:
    for page, parsed in pages.items():
        if from_disk and page.name == "404.html":
            # The web server's not-found page for any path: its links are root-absolute on purpose
            # (mkdocs), and a browser never shows it for a file:// URL.
            continue
        for link in parsed.links:
            if _internal(link):
                yield page, link


def test_pages_are_files_not_directories(site: Path, pages: dict[Path, _Links]) -> None:
    # use_directory_urls: false writes docs/sdk/go.md as sdk/go.html, never sdk/go/index.html.
    nested_index = [str(p.relative_to(site)) for p in pages if p.name == "index.html" and p.parent != site]
    assert nested_index == [], "pages written as directory/index.html (use_directory_urls must be false)"
    assert (site / "sdk" / "go.html").is_file()


def test_every_internal_link_resolves_to_a_file(site: Path, pages: dict[Path, _Links]) -> None:
    problems: list[str] = []
    checked = 0
    for page, link in _internal_links(pages, from_disk=True):
        where = f"{page.relative_to(site)}: {link!r}"
        parts = urlsplit(link)
        if not parts.path:  # "#anchor" (or "?query") within the page itself
            target = page
        elif parts.path.startswith("/"):
            problems.append(f"{where}: absolute path (resolves to the file system root from disk)")
            continue
        elif parts.path.endswith("/") or parts.path in (".", ".."):
            problems.append(f"{where}: names a directory (a listing when opened from disk)")
            continue
        else:
            target = (page.parent / unquote(parts.path)).resolve()
            if not target.is_relative_to(site.resolve()):
                problems.append(f"{where}: points outside the site")
                continue
            if not target.is_file():
                problems.append(f"{where}: no such file {target.relative_to(site.resolve())}")
                continue
        checked += 1
        fragment = unquote(parts.fragment)
        if fragment and target.suffix == ".html":
            parsed = pages.get(target) or pages.get(site / target.relative_to(site.resolve()))
            if parsed is None or fragment not in parsed.ids:
                problems.append(f"{where}: no anchor #{fragment} in {target.name}")
    assert checked > 100, f"only {checked} internal links found: is the site empty?"
    assert problems == [], "broken internal links:\n" + "\n".join(problems)


def test_links_work_when_served(site: Path, pages: dict[Path, _Links]) -> None:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        urls = set()
        for page, link in _internal_links(pages, from_disk=False):
            page_url = urljoin(base, page.relative_to(site).as_posix())
            urls.add(urljoin(page_url, link).split("#", 1)[0])
        failed = []
        for url in sorted(urls):
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            if status != 200:
                failed.append(f"{url}: HTTP {status}")
        assert failed == [], "links that fail when the site is served:\n" + "\n".join(failed)
    finally:
        server.shutdown()
        server.server_close()


def test_search_works_from_disk(site: Path, pages: dict[Path, _Links]) -> None:
    # From file:// the theme loads search/search_index.js (written by the offline plugin) instead
    # of fetching the JSON, and runs its search worker through the iframe Worker shim.
    index = site / "search" / "search_index.js"
    assert index.is_file() and index.read_text(encoding="utf-8").startswith("var __index = ")
    assert (site / SHIM).is_file()
    for page, parsed in pages.items():
        external_scripts = [link for link in parsed.links if not _internal(link) and link.endswith(".js")]
        assert not any("unpkg.com" in link for link in parsed.links), f"{page}: loads a script from unpkg.com"
        assert external_scripts == [], f"{page}: loads scripts from elsewhere: {external_scripts}"
        if page.name != "404.html":
            assert any(link.endswith(SHIM) for link in parsed.links), f"{page}: no {SHIM}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
