"""The rendered book as a reader sees it: every page of the table of contents opened in headless
Chromium over HTTP.

Run by ``make browser`` after ``make book`` (not by ``make test``: its file name keeps it out of
pytest's collection). Each page must load with no console errors and no failed requests, show every
image, typeset its math, and link only to pages and anchors that exist; chapters must offer the
Colab launch button and hide exercise solutions until clicked. As a reader sees it at 1280 px: no
output, table or equation is cut off (wider than its box), every image is a figure with a caption
(a chapter's figures numbered "Figure 3.1", "Figure 3.2", ... and naming the profile), no rendered
output holds a progress bar, a machine's path, raw TeX or a stray value such as ``True``, the
papermill parameters are not on the page, and exercises are numbered per chapter ("Exercise 3.1").
A screenshot of each page's first screen is saved under ``_build/screenshots``.

The machine is offline: requests to the MathJax CDN are answered from the npm package that
``.ci/install-browser`` fetched (same version, same files); any other request leaving localhost fails
the check.
"""

import functools
import http.server
import mimetypes
import os
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).parents[1]
HTML = Path(os.environ.get("ROBUSTBOOK_HTML", ROOT / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("ROBUSTBOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))
MATHJAX = Path(os.environ.get("ROBUSTBOOK_MATHJAX", ROOT / ".cache" / "browser" / "mathjax"))
CHROMIUM = os.environ.get("ROBUSTBOOK_CHROMIUM", "/usr/bin/chromium")
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}


def toc_pages() -> list[str]:
    """Return the document names of _toc.yml, root first (e.g. "notebooks/02_adversarial_training")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


PAGES = toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


class _Anchors(HTMLParser):
    """Collects the ids (and legacy names) an HTML file defines."""

    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


@functools.cache
def anchors(path: Path) -> frozenset:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


@pytest.fixture(scope="session")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built book at {HTML}: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run .ci/install-browser (make browser does)")
    if not (MATHJAX / "es5" / "tex-mml-chtml.js").is_file():
        pytest.fail(f"no MathJax copy at {MATHJAX}: run .ci/install-browser (make browser does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _serve_cdn_or_refuse(route, outside: list):
    url = route.request.url
    if url.startswith(MATHJAX_CDN):
        local = MATHJAX / urlparse(url).path.removeprefix(urlparse(MATHJAX_CDN).path)
        if local.is_file():
            kind = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
            return route.fulfill(status=200, body=local.read_bytes(), content_type=kind)
    outside.append(url)
    route.abort()


class Visit:
    """One page loaded in a fresh browser context, with everything that went wrong on the way."""

    def __init__(self, browser, base: str, doc: str):
        self.url = urljoin(base, doc + ".html")
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.console_errors, self.page_errors, self.failed, self.outside = [], [], [], []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} (HTTP {r.status})"))
        self.page.route(lambda url: not url.startswith(base), lambda route: _serve_cdn_or_refuse(route, self.outside))
        self.response = self.page.goto(self.url, wait_until="networkidle")
        # MathJax typesets after load; its startup promise settles when the page is done.
        self.page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")

    def close(self):
        self.context.close()


@pytest.fixture(scope="session")
def visits(browser, server):
    opened = {}
    yield lambda doc: opened.setdefault(doc, Visit(browser, server, doc))
    for visit in opened.values():
        visit.close()


@pytest.mark.parametrize("doc", PAGES)
def test_page_loads_without_errors(visits, doc):
    v = visits(doc)
    assert v.response is not None and v.response.status == 200, f"{v.url}: {v.response and v.response.status}"
    assert not v.page_errors, f"{doc}: uncaught JavaScript errors {v.page_errors}"
    assert not v.console_errors, f"{doc}: console errors {v.console_errors}"
    assert not v.failed, f"{doc}: failed requests {v.failed}"
    assert not v.outside, f"{doc}: the page asks for resources outside the book {v.outside}"


@pytest.mark.parametrize("doc", PAGES)
def test_first_screen_screenshot(visits, doc):
    path = SCREENSHOTS / (doc.replace("/", "__") + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    visits(doc).page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path}: a blank screen compresses to almost nothing"


@pytest.mark.parametrize("doc", PAGES)
def test_every_image_is_present_and_non_empty(visits, doc):
    images = visits(doc).page.eval_on_selector_all(
        "article img",
        "imgs => imgs.map(i => ({src: i.currentSrc || i.src, complete: i.complete,"
        " w: i.naturalWidth, h: i.naturalHeight}))",
    )
    for img in images:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, f"{doc}: image not shown {img}"
        path = urlparse(img["src"]).path
        if img["src"].startswith("http://127.0.0.1"):
            assert (HTML / unquote(path).lstrip("/")).stat().st_size > 0, f"{doc}: empty image file {path}"
    if doc in CHAPTERS and doc != "notebooks/08_results":
        assert images, f"{doc}: a chapter without a single figure"


@pytest.mark.parametrize("doc", PAGES)
def test_math_is_typeset(visits, doc):
    page = visits(doc).page
    raw = page.eval_on_selector_all(".math", "els => els.filter(e => !e.querySelector('mjx-container')).length")
    typeset = page.eval_on_selector_all("mjx-container", "els => els.length")
    errors = page.eval_on_selector_all("mjx-merror", "els => els.map(e => e.textContent)")
    assert raw == 0, f"{doc}: {raw} formulas left as raw TeX"
    assert not errors, f"{doc}: MathJax errors {errors}"
    if doc in ("notebooks/01_toy_model", "notebooks/02_adversarial_training"):
        assert typeset > 0, f"{doc}: expected typeset formulas"


@pytest.mark.parametrize("doc", PAGES)
def test_internal_links_resolve(visits, doc, server):
    hrefs = visits(doc).page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    broken = []
    for href in hrefs:
        target, fragment = urldefrag(href)
        if not target.startswith(server):
            continue
        path = HTML / unquote(urlparse(target).path).lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            broken.append(href)
        elif fragment and path.suffix == ".html" and unquote(fragment) not in anchors(path):
            broken.append(href)
    assert not broken, f"{doc}: links to missing pages or anchors {sorted(set(broken))}"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_chapter_offers_colab_launch_button(visits, doc):
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    expected = (
        repository["url"].replace("https://github.com/", "https://colab.research.google.com/github/")
        + f"/blob/{repository['branch']}/{doc}.ipynb"
    )
    hrefs = visits(doc).page.eval_on_selector_all("a[href*='colab.research.google.com']", "as => as.map(a => a.href)")
    assert expected in hrefs, f"{doc}: no Colab launch link to {expected} (found {hrefs})"
    assert (ROOT / f"{doc}.ipynb").is_file(), f"the launch button opens {doc}.ipynb, which the repository lacks"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_exercise_solutions_are_hidden_until_clicked(visits, doc):
    page = visits(doc).page
    solutions = page.locator("div.solution")
    if doc != "notebooks/08_results":
        assert page.locator("div.exercise").count() >= 2, f"{doc}: a chapter ends with 2-4 exercises"
        assert solutions.count() >= 1, f"{doc}: exercises without solutions"
    for i in range(solutions.count()):
        body = solutions.nth(i).locator("section").first
        assert not body.is_visible(), f"{doc}: solution {i + 1} is shown before it is asked for"
    if solutions.count():  # the reader's click on the fold's button (the title also links to the exercise)
        solutions.first.locator("button.toggle-button").click()
        solutions.first.locator("section").first.wait_for(state="visible", timeout=5_000)


# Every box a rendered output, a code cell or included code, or a formula lands in; one whose
# content is wider than the box is cut off behind a scrollbar (or spills past the text column), and its end is not read.
_CLIPPED = """() => {
  const folded = [...document.querySelectorAll('details:not([open])')];
  folded.forEach(d => d.open = true);  // a folded cell is read when unfolded: measure it open
  const column = document.querySelector('article.bd-article') || document.querySelector('article');
  const right = column.getBoundingClientRect().right;
  const selector = 'div.cell_output, div.cell_output pre, div.cell_output table, div.cell_output img, '
    + 'div.highlight pre, article table, div.pst-scrollable-table-container, div.math, '
    + 'mjx-container[display="true"], figure';
  const found = [];
  for (const el of column.querySelectorAll(selector)) {
    if (!el.getClientRects().length) continue;
    const over = el.scrollWidth - el.clientWidth, beyond = el.getBoundingClientRect().right - right;
    if ((el.tagName !== 'IMG' && over > 1) || beyond > 1) {
      const text = (el.innerText || el.getAttribute('alt') || '').trim().replace(/\\s+/g, ' ');
      found.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} (${el.scrollWidth} px in `
                 + `${el.clientWidth}, ${Math.round(beyond)} px past the column): ${text.slice(0, 60)}`);
    }
  }
  folded.forEach(d => d.open = false);
  return found;
}"""


@pytest.mark.parametrize("doc", PAGES)
def test_no_output_is_clipped(visits, doc):
    clipped = visits(doc).page.evaluate(_CLIPPED)
    assert not clipped, f"{doc}: {len(clipped)} boxes wider than the page shows at 1280 px:\n  " + "\n  ".join(clipped)


_IMAGES = """() => [...document.querySelectorAll('article img')].map(img => {
  const figure = img.closest('figure'), caption = figure && figure.querySelector('figcaption');
  return {src: (img.getAttribute('src') || '').slice(0, 60), in_output: !!img.closest('div.cell_output'),
          caption: caption ? caption.innerText.trim() : null};
})"""


@pytest.mark.parametrize("doc", PAGES)
def test_every_figure_is_numbered_and_captioned(visits, doc):
    images = visits(doc).page.evaluate(_IMAGES)
    bare = [i["src"] for i in images if not i["caption"]]
    assert not bare, f"{doc}: {len(bare)} of {len(images)} images without a figure caption: {bare}"
    if doc in CHAPTERS:
        captions = [i["caption"] for i in images if i["in_output"]]
        chapter = int(Path(doc).name[:2])
        numbers = [re.match(r"Figure (\d+\.\d+)\.", c) for c in captions]
        assert [m and m.group(1) for m in numbers] == [f"{chapter}.{k}" for k in range(1, len(captions) + 1)], (
            f"{doc}: figures not numbered {chapter}.1, {chapter}.2, ... in order: {[c[:40] for c in captions]}"
        )
        unprofiled = [c[:60] for c in captions if "Profile:" not in c]
        assert not unprofiled, f"{doc}: figure captions that do not name the profile: {unprofiled}"


_OUTPUT_TEXT = """() => [...document.querySelectorAll('div.cell_output > *')].map(out => {
  const copy = out.cloneNode(true);  // the text a reader reads: no typeset math, scripts or copy buttons
  copy.querySelectorAll('script, style, mjx-container, button, .copybtn').forEach(e => e.remove());
  return copy.textContent;
})"""
_BAD_LINES = {
    "progress bar": re.compile(r"\d+%\||\bit/s\]|\bs/it\]"),
    "path of the machine": re.compile(r"/tmp/|/home/|/work/|/root/|/Users/|\.cache/"),
    "raw TeX": re.compile(r"\$\\|\\(ell|varepsilon|epsilon|infty|frac|sqrt|cdot|mathbb|mathcal|operatorname)\b"),
}
_STRAY = re.compile(r"(True|False|None|\[?<matplotlib\..*|Text\(.*|<Figure size .*)")


@pytest.mark.parametrize("doc", PAGES)
def test_outputs_hold_no_progress_bars_paths_raw_tex_or_stray_values(visits, doc):
    found = []
    for text in visits(doc).page.evaluate(_OUTPUT_TEXT):
        if _STRAY.fullmatch(text.strip()):
            found.append(f"stray value: {text.strip()[:80]}")
        for line in text.splitlines():
            found += [f"{what}: {line.strip()[:80]}" for what, pattern in _BAD_LINES.items() if pattern.search(line)]
    assert not found, f"{doc}: {len(found)} output lines a reader should not see:\n  " + "\n  ".join(found)


@pytest.mark.parametrize("doc", CHAPTERS)
def test_papermill_bookkeeping_is_not_on_the_page(visits, doc):
    cells = visits(doc).page.eval_on_selector_all(
        "div.cell.tag_parameters, div.cell.tag_injected-parameters",
        "els => els.map(e => e.innerText.trim().slice(0, 40))",
    )
    assert not cells, f"{doc}: the parameters cells are shown: {cells}"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_exercises_are_numbered_per_chapter(visits, doc):
    page = visits(doc).page
    titles = page.eval_on_selector_all(
        "div.exercise p.admonition-title span.caption-number", "els => els.map(e => e.textContent.trim())"
    )
    chapter = int(Path(doc).name[:2])
    assert titles == [f"Exercise {chapter}.{k}" for k in range(1, len(titles) + 1)], (
        f"{doc}: exercises numbered {titles}, expected Exercise {chapter}.1, {chapter}.2, ..."
    )
    solutions = page.eval_on_selector_all("div.solution p.admonition-title", "els => els.map(e => e.textContent)")
    numbers = [re.search(r"Exercise (\S+)", t) for t in solutions]
    assert all(m and m.group(1).startswith(f"{chapter}.") for m in numbers), f"{doc}: solutions titled {solutions}"
