"""The rendered book as a reader sees it: built from stored outputs, opened in headless Chromium
with the network off.

The site is built once per session into a temporary folder and opened in one browser context
with the network off, two pages loading at a time; each page is loaded once (the pages that the
interaction tests use stay open after the render test). The browser tests need Debian's
``chromium`` and the ``playwright`` package; without them they are skipped, unless
``DIFFUSION_LAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``), in which case they fail.
Screenshots of every page are saved in ``_build/screenshots/`` (JPEG) for a person to look at.

The interactive figures (``diffusion_lab.figures``) are found on any page by the class their static
HTML carries (``dl-explorer``), so that a chapter's new figure is tested without naming it here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"
REQUIRE_BROWSER = os.environ.get("DIFFUSION_LAB_REQUIRE_BROWSER") == "1"
MAX_PAGE_BYTES = 5_000_000
MAX_PAGE_HTML_BYTES = 1_500_000  # a page's own HTML, with its embedded figure data (issue 20)
FIGURE_CLASS = "dl-explorer"  # what every static figure of diffusion_lab.figures carries
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """Build the book from its stored outputs, warnings as errors, and return the HTML folder."""
    out = tmp_path_factory.mktemp("site")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jupyter_book), "build", "--nitpick", "--warningiserror", "--keep-going",
                             "--path-output", str(out), str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "_build" / "html"


def _pages(site: Path) -> list[Path]:
    return sorted(site.glob("book/*.html")) + [site / "genindex.html", site / "search.html"]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_internal_links_resolve_and_external_links_are_listed(site):
    """Every relative href/src points at a file of the site (and an existing anchor); external links
    are written to external_links.txt for the periodic link check."""
    external, broken = set(), []
    parsed = {p: _parse(p) for p in site.rglob("*.html") if "_static" not in p.parts}
    for page, links in parsed.items():
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                external.add(link)
                continue
            if parts.scheme or link.startswith(("#", "mailto:", "javascript:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif parts.fragment and target in parsed and parts.fragment not in parsed[target].ids:
                broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert not broken, "\n".join(broken)
    (site / "external_links.txt").write_text("\n".join(sorted(external)) + "\n")
    assert any("colab.research.google.com" in url for url in external)


def _local_files(page: Path, site: Path) -> set[Path]:
    files = {page}
    for link in _parse(page).links:
        parts = urlsplit(link)
        if not parts.scheme and parts.path and not link.startswith("#"):
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_file() and target.suffix in (".js", ".css", ".png", ".svg", ".jpg", ".woff", ".woff2"):
                files.add(target)
    return files


def test_no_page_weighs_more_than_5_mb(site):
    """A page's weight: its HTML plus the local scripts, styles and images it references, plus the
    MathJax fonts (loaded on demand by pages with maths)."""
    fonts = sum(f.stat().st_size for f in (site / "_static" / "mathjax").rglob("*.woff"))
    for page in _pages(site):
        weight = sum(f.stat().st_size for f in _local_files(page, site)) + fonts
        assert weight < MAX_PAGE_BYTES, f"{page.name}: {weight / 1e6:.1f} MB"


def test_no_page_html_weighs_more_than_1_5_mb(site):
    """A page's own HTML file, embedded figure data included (scripts, styles and images apart)."""
    heavy = {p.relative_to(site).as_posix(): p.stat().st_size for p in site.rglob("*.html")
             if "_static" not in p.parts and p.stat().st_size > MAX_PAGE_HTML_BYTES}
    assert not heavy, {name: f"{size / 1e6:.2f} MB" for name, size in heavy.items()}


def _figure_pages(site: Path) -> list[str]:
    """The chapters whose HTML holds a static interactive figure."""
    return [p.stem for p in sorted(site.glob("book/*.html")) if f'class="{FIGURE_CLASS}"' in p.read_text()]


def test_every_live_figure_has_its_static_twin_on_the_page(site):
    """A live cell shows a note in the book (no kernel) that points to the static version: it must be there."""
    for page in sorted(site.glob("book/*.html")):
        html = page.read_text()
        notes = html.count('class="dl-live-note"')
        assert notes <= html.count(f'class="{FIGURE_CLASS}"'), f"{page.name}: {notes} live notes, fewer static figures"
        assert "widget-view+json" not in html, f"{page.name}: a live widget with no kernel to draw it"
    assert "01_forward_process" in _figure_pages(site)


def test_mathjax_is_served_by_the_site_itself(site):
    page = (site / "book" / "01_forward_process.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    assert mathjax and all(not s.startswith("http") for s in mathjax), mathjax
    assert (site / "_static" / "mathjax" / "es5" / "tex-chtml-full.js").is_file()


@pytest.fixture(scope="session")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        message = "the browser tests need Chromium and playwright (apt-get install chromium; requirements.txt)"
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class OfflinePage:
    """A page of the site opening in the shared offline context, with what it logged and requested.

    Navigation starts at once and ``wait()`` waits for the load event, so that several pages can load
    at the same time (one renderer process each: a page's scripts are parsed on one core)."""

    def __init__(self, context, path: Path) -> None:
        self.path, self.errors, self.requests = path, [], []
        self.page = context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # The context is offline, so a request off file:// fails anyway; it is recorded, not
        # intercepted (intercepting every request through Python cost seconds per page).
        self.page.on("request", lambda r: None if r.url.startswith("file://") else self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="commit")

    def wait(self):
        self.page.wait_for_load_state("load")
        return self.page


class Site:
    """The built site open in one browser context with the network off; pages that a later test
    interacts with are kept open, so each page of the site is loaded once per session."""

    def __init__(self, browser, root: Path) -> None:
        self.root = root
        self.context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
        self.kept: dict[str, OfflinePage] = {}
        self.interactive: set[str] = set()  # the pages that the render test keeps open for later tests

    def open(self, path: Path) -> OfflinePage:
        return OfflinePage(self.context, path)

    def take(self, name: str) -> OfflinePage:
        """The page ``book/<name>.html``, untouched since it loaded: kept by an earlier test or opened now."""
        loaded = self.kept.pop(name, None) or self.open(self.root / "book" / f"{name}.html")
        loaded.wait()
        return loaded


@pytest.fixture(scope="module")
def offline_site(site, browser):
    opened = Site(browser, site)
    # The pages that the tests after the render test use: kept open by it.
    opened.interactive = {"04_training", *_figure_pages(site)}
    yield opened
    opened.context.close()


NO_RAW_TEX = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, .highlight, mjx-assistive-mml').forEach(e => e.remove());
  const text = body.innerText;
  return ['\\\\(', '\\\\[', '$$'].filter(d => text.includes(d));
}"""
PAGES_IN_FLIGHT = 2  # pages loading while one is checked: one per core of the 2-core target


def test_every_page_renders_offline(offline_site):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    queue = _pages(offline_site.root)
    loading = [offline_site.open(p) for p in queue[:PAGES_IN_FLIGHT]]
    for i, loaded in enumerate(loading):  # the list grows as pages are checked
        if i + PAGES_IN_FLIGHT < len(queue):
            loading.append(offline_site.open(queue[i + PAGES_IN_FLIGHT]))
        page, name = loaded.wait(), loaded.path.stem
        has_math = page.locator("span.math, div.math").count() > 0
        if has_math:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=20_000)
            page.evaluate("() => MathJax.startup.promise")
            assert page.locator("mjx-container").count() > 0, f"{name}: MathJax did not render"
            assert page.evaluate(NO_RAW_TEX) == [], f"{name}: raw TeX delimiters left on the page"
        broken_images = page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert broken_images == [], f"{name}: images that did not load: {broken_images}"
        # JPEG: encoding a 15,000-pixel-tall page as PNG took seconds; the shots are for a person.
        page.screenshot(path=str(SCREENSHOTS / f"{name}.jpg"), full_page=True, type="jpeg", quality=80)
        assert loaded.errors == [], f"{name}: JavaScript errors: {loaded.errors}"
        assert loaded.requests == [], f"{name}: requests to the network: {loaded.requests}"
        if loaded.path.parent.name == "book" and name in offline_site.interactive:
            offline_site.kept[name] = loaded
        else:
            page.close()


FIGURE_STATE = """root => ({
  readout: root.querySelector('.dl-readout').textContent,
  values: Array.from(root.querySelectorAll('.dl-value')).map(v => v.textContent),
  pixels: Array.from(root.querySelectorAll('canvas.dl-panel')).map(c => c.toDataURL()),
})"""


def test_every_static_figure_responds_to_each_control(offline_site):
    """On every page with static figures: each slider of each figure, moved to its other end by a key
    press (a real input event), changes the readout, the value shown and the picture on the canvases,
    and nothing is logged to the console."""
    pages = _figure_pages(offline_site.root)
    assert pages, "no page of the site holds a static figure"
    checked = []
    for name in pages:
        loaded = offline_site.take(name)
        page = loaded.page
        figures = page.locator(f"div.{FIGURE_CLASS}")
        assert figures.count() > 0, f"{name}: a figure's HTML is there but nothing was drawn"
        for k in range(figures.count()):
            figure = figures.nth(k)
            figure.scroll_into_view_if_needed()
            assert figure.get_attribute("data-ready") == "1", f"{name}, figure {k}: its script did not run"
            assert figure.locator("canvas.dl-panel").count() > 0, f"{name}, figure {k}: no canvas"
            sliders = figure.locator("input.dl-slider")
            assert sliders.count() > 0, f"{name}, figure {k}: no control"
            for i in range(sliders.count()):
                slider = sliders.nth(i)
                control = f"{name}, figure {k}, control {slider.get_attribute('aria-label')!r}"
                before = figure.evaluate(FIGURE_STATE)
                at_end = slider.input_value() == slider.get_attribute("max")
                slider.focus()
                page.keyboard.press("Home" if at_end else "End")
                after = figure.evaluate(FIGURE_STATE)
                assert after["readout"] != before["readout"], f"{control}: the readout did not change"
                assert after["values"] != before["values"], f"{control}: the value shown did not change"
                assert after["pixels"] != before["pixels"], f"{control}: the picture did not change"
                checked.append(control)
        assert loaded.errors == [], f"{name}: JavaScript errors: {loaded.errors}"
        page.close()
    assert len(checked) >= 2


def test_exercise_solutions_are_hidden_until_opened(offline_site):
    loaded = offline_site.take("04_training")
    page = loaded.page
    solutions = page.locator("div.solution.dropdown")
    assert solutions.count() >= 3
    first = solutions.first
    first.scroll_into_view_if_needed()
    body = first.locator("> :not(.admonition-title)").first
    assert not body.is_visible()
    first.locator(".admonition-title").click()
    body.wait_for(state="visible", timeout=5_000)
    assert loaded.errors == []
    page.close()


def test_launch_and_download_buttons_on_every_chapter(site):
    for page_path in sorted(site.glob("book/0*.html")):
        html = page_path.read_text()
        notebook = f"book/{page_path.stem}.ipynb"
        assert f"https://colab.research.google.com/github/diffusion-lab/diffusion-lab/blob/main/{notebook}" in html
        assert "mybinder.org/v2/gh/diffusion-lab/diffusion-lab/main?urlpath=tree/" + notebook in html
        assert f"_sources/{notebook}" in html  # the download button
