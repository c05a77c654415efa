"""Load every page of the built site in headless Chromium and check it as a reader would.

    python tests/browser/check_site.py [--site build/site] [--chromium /usr/bin/chromium]
                                       [--screenshots build/screenshots]

Run by ``nox -s browser`` after ``mkdocs build --strict``. It serves the site on 127.0.0.1
(an ``http.server`` in a thread), drives Debian's Chromium through the DevTools protocol
with Playwright (``executable_path``: no browser is downloaded), and fails when:

- a page logs a console error, throws an uncaught exception, requests anything from
  another host (the site works offline), or a request to the site fails or answers 4xx/5xx;
- an internal link points to a page that does not exist, or to an ``#anchor`` that no
  element of the target page has;
- the search box does not find the pairing page for "pairing approve";
- a ```` ```mermaid ```` block of a page is not drawn as a diagram (an ``<svg>``; mermaid is
  shipped with the site, ``docs/javascripts/mermaid.min.js``), or the home page's
  architecture diagram or the pairing page's sequence diagram is missing or empty;
- an image does not load (``naturalWidth`` 0), or the home page lacks the demo's picture
  (``docs/img/demo.svg``);
- a key cell of the configuration reference is cut or breaks inside a name.

mkdocs-material draws each diagram into a *closed* shadow root; an init script opens them
(``attachShadow`` is called with ``mode: "open"``) so that the check can look inside.

It saves screenshots of the home page (light and dark), of both diagrams, of the demo's
picture and of the configuration reference under ``--screenshots``. This file is not a
pytest test module: the normal test run does not collect it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlparse

from playwright.sync_api import BrowserContext, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SEARCH_QUERY = "pairing approve"
SEARCH_EXPECTS = "pairing/"
TIMEOUT_MS = 30_000
# pages that must show a diagram, with words its drawing must contain
DIAGRAMS = {
    "": ["Inbound pipeline", "Outbound pipeline", "your agent"],
    "pairing/": ["Pairing state", "pairing code Q7MZ4KXP"],
    "webhooks/": ["your endpoints", "agent endpoint"],
}
# pages that must show a picture (the src ends with it)
PICTURES = {"": "img/demo.svg"}
# mkdocs-material attaches closed shadow roots (the diagrams): open them for the check
OPEN_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attachShadow.call(this, { ...init, mode: "open" });
};
"""
# every drawn diagram: its svg's size and text (null when the block has no svg)
DRAWN_DIAGRAMS = """() => [...document.querySelectorAll("div.mermaid")].map(d => {
  const svg = d.shadowRoot && d.shadowRoot.querySelector("svg");
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  return { width: box.width, height: box.height, text: svg.textContent };
})"""
# every image of the page, loaded (lazy ones too): its src and natural width
LOADED_IMAGES = """async () => Promise.all([...document.images].map(async img => {
  img.loading = "eager";
  try { await img.decode(); } catch (e) {}
  return { src: img.currentSrc || img.src, width: img.naturalWidth };
}))"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def site_pages(site: Path) -> list[str]:
    """Site-relative URLs of every page: ``""`` for the home page, ``"pairing/"``..."""
    pages = []
    for index in sorted(site.rglob("index.html")):
        rel = index.parent.relative_to(site).as_posix()
        if rel.startswith(("assets", "search")):
            continue
        pages.append("" if rel == "." else rel + "/")
    return pages


def target_file(site: Path, path: str) -> Path:
    """The file the server answers for a URL path (directories serve their index.html)."""
    local = site / unquote(path).lstrip("/")
    return local / "index.html" if path.endswith("/") or local.is_dir() else local


class Checker:
    def __init__(self, site: Path, base: str, context: BrowserContext) -> None:
        self.site = site
        self.base = base
        self.context = context
        self.problems: list[str] = []
        self.ids: dict[str, set[str]] = {}  # page path -> element ids
        self.links: dict[str, set[str]] = {}  # page path -> internal hrefs
        self.diagrams = 0  # diagrams drawn, on all pages
        self.images = 0  # images loaded, on all pages

    def watch(self, page: Page, where: list[str]) -> None:
        """Record console errors, uncaught exceptions and failed requests of ``page``."""

        def console(msg: Any) -> None:
            if msg.type == "error":
                url = (msg.location or {}).get("url", "")
                self.problems.append(f"{where[0]}: console error: {msg.text} {url}".rstrip())

        def page_error(exc: Any) -> None:
            self.problems.append(f"{where[0]}: uncaught exception: {exc}")

        def request(request: Any) -> None:
            # the site must work offline: no fonts, scripts or images from other hosts
            if not request.url.startswith((self.base, "data:", "blob:")):
                self.problems.append(f"{where[0]}: request to another host: {request.url}")

        def request_failed(request: Any) -> None:
            if request.url.startswith(self.base):
                self.problems.append(f"{where[0]}: request failed: {request.url}")

        def response(resp: Any) -> None:
            if resp.url.startswith(self.base) and resp.status >= 400:
                self.problems.append(f"{where[0]}: HTTP {resp.status} for {resp.url}")

        page.on("console", console)
        page.on("pageerror", page_error)
        page.on("request", request)
        page.on("requestfailed", request_failed)
        page.on("response", response)

    def visit_all(self, pages: list[str]) -> None:
        page = self.context.new_page()
        where = [""]
        self.watch(page, where)
        for rel in pages:
            where[0] = "/" + rel
            page.goto(self.base + rel, wait_until="load", timeout=TIMEOUT_MS)
            page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
            path = urlparse(page.url).path
            self.ids[path] = set(
                page.eval_on_selector_all(
                    "[id], a[name]", "els => els.map(e => e.id || e.getAttribute('name'))"
                )
            )
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            self.links[path] = {h for h in hrefs if h.startswith(self.base)}
            self.check_diagrams(page, rel)
            self.check_images(page, rel)
        page.close()

    def check_diagrams(self, page: Page, rel: str) -> None:
        """Every ```mermaid block of the page became an <svg> (mermaid ran, offline)."""
        html = target_file(self.site, "/" + rel).read_text(encoding="utf-8")
        blocks = html.count('<pre class="mermaid">')
        if rel in DIAGRAMS and blocks == 0:
            self.problems.append(f"/{rel}: no diagram on the page")
        if blocks == 0:
            return
        with contextlib.suppress(PlaywrightTimeoutError):  # reported below, with what was drawn
            page.wait_for_function(
                f"() => ({DRAWN_DIAGRAMS})().filter(Boolean).length >= {blocks}",
                timeout=TIMEOUT_MS,
            )
        drawn: list[dict[str, Any] | None] = page.evaluate(DRAWN_DIAGRAMS)
        svgs = [d for d in drawn if d is not None]
        if len(svgs) < blocks:
            self.problems.append(f"/{rel}: {blocks - len(svgs)} of {blocks} diagram(s) not drawn")
        for svg in svgs:
            if "Syntax error" in svg["text"]:
                self.problems.append(f"/{rel}: mermaid could not read a diagram")
        for word in DIAGRAMS.get(rel, []):
            sized = [d for d in svgs if d["width"] > 100 and d["height"] > 100]
            if not any(word in d["text"] for d in sized):
                self.problems.append(f"/{rel}: no drawn diagram says {word!r}")
        self.diagrams += len(svgs)

    def check_images(self, page: Page, rel: str) -> None:
        """Every image of the page loads; the pages of PICTURES show theirs."""
        images: list[dict[str, Any]] = page.evaluate(LOADED_IMAGES)
        for image in images:
            if image["width"] == 0:
                self.problems.append(f"/{rel}: image did not load: {image['src']}")
        want = PICTURES.get(rel)
        if want is not None and not any(i["src"].endswith(want) and i["width"] > 0 for i in images):
            self.problems.append(f"/{rel}: the picture {want} is not shown")
        self.images += sum(1 for i in images if i["width"] > 0)

    def check_links(self) -> int:
        checked = 0
        for source, hrefs in sorted(self.links.items()):
            for href in sorted(hrefs):
                url, fragment = urldefrag(href)
                path = urlparse(url).path or "/"
                checked += 1
                if not target_file(self.site, path).is_file():
                    self.problems.append(f"{source}: broken link {href}")
                    continue
                if not fragment:
                    continue
                if path not in self.ids:  # a file that is not a page (e.g. an asset)
                    continue
                if unquote(fragment) not in self.ids[path]:
                    self.problems.append(f"{source}: broken anchor {href}")
        return checked

    def check_search(self) -> list[str]:
        page = self.context.new_page()
        where = ["/ (search)"]
        self.watch(page, where)
        page.goto(self.base, wait_until="networkidle", timeout=TIMEOUT_MS)
        page.click("label.md-search__icon, .md-search__input", timeout=TIMEOUT_MS)
        box = page.locator("input.md-search__input")
        box.fill("")
        box.type(SEARCH_QUERY, delay=20)
        page.wait_for_selector(".md-search-result__item a", timeout=TIMEOUT_MS)
        results = page.eval_on_selector_all(
            ".md-search-result__item a", "els => els.map(e => e.href)"
        )
        page.close()
        paths = [urlparse(h).path for h in results]
        if not any(p.rstrip("/").endswith(SEARCH_EXPECTS.rstrip("/")) for p in paths):
            self.problems.append(
                f'search: "{SEARCH_QUERY}" did not find the {SEARCH_EXPECTS} page: {paths}'
            )
        return paths

    def screenshots(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        page = self.context.new_page()
        page.set_viewport_size({"width": 1280, "height": 900})
        saved = []
        page.goto(self.base, wait_until="networkidle", timeout=TIMEOUT_MS)
        saved.append(out / "home.png")
        page.screenshot(path=saved[-1], full_page=True)
        # the palette toggle switches to the dark scheme
        page.click("form[data-md-component=palette] label:visible", timeout=TIMEOUT_MS)
        page.wait_for_timeout(300)
        scheme = page.eval_on_selector("body", "b => b.getAttribute('data-md-color-scheme')")
        if scheme != "slate":
            self.problems.append(f"dark mode: the palette toggle gave scheme {scheme!r}")
        saved.append(out / "home-dark.png")
        page.screenshot(path=saved[-1])
        page.click("form[data-md-component=palette] label:visible", timeout=TIMEOUT_MS)
        page.goto(self.base + "configuration/", wait_until="networkidle", timeout=TIMEOUT_MS)
        saved.append(out / "configuration.png")
        page.screenshot(path=saved[-1])
        page.goto(self.base + "configuration/#every-key", wait_until="networkidle")
        page.wait_for_timeout(500)  # let the header's title transition finish
        saved.append(out / "configuration-keys.png")
        page.screenshot(path=saved[-1])
        self.check_key_cells(page)
        tools = page.locator("tr", has=page.locator("code.config-key", has_text="tools")).first
        tools.scroll_into_view_if_needed()
        saved.append(out / "configuration-tools.png")
        tools.screenshot(path=saved[-1])
        for rel, name in [("", "home-architecture"), ("pairing/", "pairing-flow")]:
            page.goto(self.base + rel, wait_until="networkidle", timeout=TIMEOUT_MS)
            diagram = page.locator("div.mermaid").first
            diagram.wait_for(timeout=TIMEOUT_MS)
            diagram.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            saved.append(out / f"{name}.png")
            diagram.screenshot(path=saved[-1])
        page.goto(self.base, wait_until="networkidle", timeout=TIMEOUT_MS)
        picture = page.locator("img.terminal").first
        picture.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        saved.append(out / "home-demo.png")
        picture.screenshot(path=saved[-1])
        page.close()
        return saved

    def check_key_cells(self, page: Page) -> None:
        """The reference's key cells: one line per dotted part at most, never a name cut in
        two (material's code spans break anywhere), and the tools cell says it all."""
        cut: list[str] = page.eval_on_selector_all(
            "code.config-key",
            """els => els.filter(el => {
              const range = document.createRange();
              // each text node is one dotted part: it must sit on one line
              for (const node of el.childNodes) {
                if (node.nodeType !== Node.TEXT_NODE || !node.textContent) continue;
                range.selectNodeContents(node);
                const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                if (lines.size > 1) return true;
              }
              return false;
            }).map(el => el.textContent)""",
        )
        for key in cut:
            self.problems.append(f"/configuration/: the key {key} breaks inside a name")
        cell = page.eval_on_selector_all(
            "tr",
            """rows => rows.filter(r => r.querySelector("code.config-key") &&
              r.querySelector("code.config-key").textContent.endsWith(".tools"))
              .map(r => r.lastElementChild.textContent)""",
        )
        if not cell or "{allow, alsoAllow, deny}" not in cell[0]:
            self.problems.append(f"/configuration/: the groups.<id>.tools cell is cut: {cell}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=Path("build/site"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshots", type=Path, default=Path("build/screenshots"))
    args = parser.parse_args(argv)
    site: Path = args.site.resolve()
    if not (site / "index.html").is_file():
        print(f"no built site at {site}: run mkdocs build first", file=sys.stderr)
        return 2
    if not Path(args.chromium).exists():
        print(f"Chromium not found at {args.chromium}", file=sys.stderr)
        return 2
    pages = site_pages(site)
    with serve(site) as base, tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,  # a fresh --user-data-dir
            executable_path=args.chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        context.add_init_script(OPEN_SHADOW_ROOTS)
        checker = Checker(site, base, context)
        results: list[str] = []
        shots: list[Path] = []
        try:
            checker.visit_all(pages)
            links = checker.check_links()
            # a stage that times out is a problem to report with the others, not a crash
            try:
                results = checker.check_search()
            except PlaywrightError as exc:
                checker.problems.append(f"search: {exc.message.splitlines()[0]}")
            try:
                shots = checker.screenshots(args.screenshots)
            except PlaywrightError as exc:
                checker.problems.append(f"screenshots: {exc.message.splitlines()[0]}")
        finally:
            context.close()
    print(f"browser check: {len(pages)} pages loaded in Chromium, {links} internal links checked")
    print(f"browser check: {checker.diagrams} diagram(s) drawn, {checker.images} image(s) loaded")
    print(f'browser check: search "{SEARCH_QUERY}" found {", ".join(results[:5])}')
    for shot in shots:
        print(f"browser check: screenshot {shot}")
    if checker.problems:
        print(f"browser check: {len(checker.problems)} problem(s):", file=sys.stderr)
        for problem in checker.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("browser check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
