"""The rendered book as a reader sees it: built from stored outputs, opened in headless Chromium
with the network off.

The site is built once per session into a temporary folder. The browser tests need Debian's
``chromium`` and the ``playwright`` package; without them they are skipped, unless
``DIFFUSION_LAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``), in which case they fail.
Screenshots of every page are saved in ``_build/screenshots/`` for a person to look at.
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


def _open_offline(browser, url: str):
    """Open ``url`` in a fresh context with the network off; return (page, errors, blocked requests)."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    errors, blocked = [], []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    return page, errors, blocked


NO_RAW_TEX = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, .highlight, mjx-assistive-mml').forEach(e => e.remove());
  const text = body.innerText;
  return ['\\\\(', '\\\\[', '$$'].filter(d => text.includes(d));
}"""


def test_every_page_renders_offline(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for page_path in _pages(site):
        page, errors, blocked = _open_offline(browser, page_path.as_uri())
        name = page_path.stem
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
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert errors == [], f"{name}: JavaScript errors: {errors}"
        assert blocked == [], f"{name}: requests to the network: {blocked}"
        page.context.close()


def test_static_scrubber_responds_to_the_slider(site, browser):
    page, errors, _ = _open_offline(browser, (site / "book" / "01_forward_process.html").as_uri())
    scrubber = page.locator(".dl-scrubber").first
    scrubber.scroll_into_view_if_needed()
    label = scrubber.locator(".dl-label")
    canvas = scrubber.locator("canvas.dl-points")
    before_label, before_pixels = label.inner_text(), canvas.evaluate("c => c.toDataURL()")
    slider = scrubber.locator("input.dl-t")
    slider.focus()
    page.keyboard.press("End")  # a real input event: the slider jumps to t = T
    after_label, after_pixels = label.inner_text(), canvas.evaluate("c => c.toDataURL()")
    assert before_label.startswith("t = 250 / 1000") and after_label.startswith("t = 1000 / 1000")
    assert after_pixels != before_pixels
    scrubber.locator("select.dl-variant").select_option(index=4)  # cosine, T = 100
    assert label.inner_text().startswith("t = 100 / 100")
    assert errors == []
    page.context.close()


def test_exercise_solutions_are_hidden_until_opened(site, browser):
    page, errors, _ = _open_offline(browser, (site / "book" / "04_training.html").as_uri())
    solutions = page.locator("div.solution.dropdown")
    assert solutions.count() >= 3
    first = solutions.first
    first.scroll_into_view_if_needed()
    body = first.locator("> :not(.admonition-title)").first
    assert not body.is_visible()
    first.locator(".admonition-title").click()
    body.wait_for(state="visible", timeout=5_000)
    assert errors == []
    page.context.close()


def test_launch_and_download_buttons_on_every_chapter(site):
    for page_path in sorted(site.glob("book/0*.html")):
        html = page_path.read_text()
        notebook = f"book/{page_path.stem}.ipynb"
        assert f"https://colab.research.google.com/github/diffusion-lab/diffusion-lab/blob/main/{notebook}" in html
        assert "mybinder.org/v2/gh/diffusion-lab/diffusion-lab/main?urlpath=tree/" + notebook in html
        assert f"_sources/{notebook}" in html  # the download button
