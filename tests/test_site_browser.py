"""The built site, read offline in a real browser (headless Chromium through Selenium).

Every page of ``_build/html`` is opened from disk (file:// URLs) with every host name unresolvable,
as a reader without a network would open it, and checked for what a reader sees: every formula
typeset by MathJax (no raw ``\\(`` or ``$$`` left in the text), every image loaded, no request to
anything outside the site's folder, no JavaScript error in the console. A screenshot of each
chapter's first screen goes to ``_build/screenshots/``.

Run it after ``make book`` with ``make site-test``; it is skipped when the site is not built or
when Chromium, chromedriver or Selenium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser_support import chromium, start_chromium

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
PAGES = sorted(
    p.relative_to(SITE).as_posix()
    for p in SITE.rglob("*.html")
    if p.relative_to(SITE).parts[0] not in ("_static", "_sources", "_images") and p.name != "index.html"
)

pytestmark = [
    pytest.mark.skipif(not (SITE / "index.html").exists(), reason="the site is not built: run `make book` first"),
    pytest.mark.xdist_group("site-browser"),
]


# What the page shows once MathJax is done: run in the page after it has loaded.
INSPECT = """
const done = arguments[arguments.length - 1];
const settle = (ms) => new Promise((r) => setTimeout(r, ms));
const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise
  ? Promise.race([
      window.MathJax.startup.promise.then(() => "typeset", (e) => "failed: " + e),
      settle(20000).then(() => "timeout"),
    ])
  : Promise.resolve(window.MathJax ? "not started" : "absent");
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
const loaded = Promise.all(images.map((img) => img.complete ? null : new Promise((r) => {
  img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 10000);
})));
Promise.all([mathjax, loaded]).then(([state]) => {
  const main = (document.querySelector("main") || document.body).cloneNode(true);
  main.querySelectorAll("pre, code, script, style, textarea, .highlight, mjx-container").forEach((e) => e.remove());
  const text = main.textContent;
  const raw = [];
  for (const marker of ["\\\\(", "\\\\[", "$$"]) {
    let i = text.indexOf(marker);
    while (i >= 0 && raw.length < 20) {
      raw.push(text.slice(Math.max(0, i - 30), i + 50));
      i = text.indexOf(marker, i + 1);
    }
  }
  const math = Array.from(document.querySelectorAll(".math"));
  // each kernel-free explorer: the frame shown before and after its first slider moves to its end
  const shown = (root) => Array.from(root.querySelectorAll("img[data-frame]"))
    .filter((img) => img.style.display !== "none").map((img) => img.getAttribute("data-frame")).join(",");
  const explorers = Array.from(document.querySelectorAll(".pl-frames")).map((root) => {
    const before = shown(root);
    const slider = root.querySelector("input[type=range]");
    slider.value = slider.max;
    slider.dispatchEvent(new Event("input"));
    return {before: before, after: shown(root)};
  });
  done({
    explorers: explorers,
    mathjax: state,
    formulas: math.length,
    containers: document.querySelectorAll("mjx-container").length,
    untypeset: math.filter((m) => !m.querySelector("mjx-container")).length,
    raw: raw,
    widgets: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
    images: images.map((img) => ({
      src: img.currentSrc || img.src, width: img.naturalWidth, alt: img.getAttribute("alt"),
      shown: img.getBoundingClientRect().width,
      legend_pt: parseFloat(img.getAttribute("data-legend-pt")) || null,
      dpi: parseFloat(img.getAttribute("data-dpi")) || null,
    })),
  });
});
"""


@pytest.fixture(scope="module")
def site():
    """Every page's findings, from one pass of the browser over the site."""
    if chromium() is None:
        pytest.skip("Chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    pytest.importorskip("selenium.webdriver", reason="selenium is needed (the test extra)")
    return read_site()


def read_site(site: Path = SITE, pages: list[str] = PAGES, screenshots: Path = SCREENSHOTS) -> dict:
    """Open every page once, offline, and record what the tests check: {page: findings}."""
    driver = start_chromium()
    screenshots.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for page in pages:
            driver.get((site / page).as_uri())
            findings = driver.execute_async_script(INSPECT)
            findings["requests"] = sorted(
                {
                    message["params"]["request"]["url"]
                    for entry in driver.get_log("performance")
                    for message in [json.loads(entry["message"])["message"]]
                    if message["method"] == "Network.requestWillBeSent"
                }
            )
            findings["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if page.startswith("chapters/"):
                driver.save_screenshot(str(screenshots / f"{Path(page).stem}.png"))
            results[page] = findings
    finally:
        driver.quit()
    return results


def test_the_site_has_pages():
    assert "book/preface.html" in PAGES and any(p.startswith("chapters/") for p in PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_every_formula_is_typeset(site, page):
    found = site[page]
    if found["formulas"]:
        assert found["mathjax"] == "typeset", f"MathJax: {found['mathjax']}"
    assert found["untypeset"] == 0, f"{found['untypeset']} of {found['formulas']} formulas left as raw TeX"
    assert found["containers"] >= found["formulas"]
    assert not found["raw"], f"raw TeX in the text: {found['raw']}"


@pytest.mark.parametrize("page", PAGES)
def test_every_image_loads(site, page):
    broken = [img["src"] for img in site[page]["images"] if not img["width"]]
    assert not broken, f"images that did not load: {broken}"


def _without_alt_text(img) -> bool:
    """No alt text, or only the image's own file name (what a notebook's figure output gets)."""
    alt = (img["alt"] or "").strip()
    return not alt or img["src"].endswith(alt.rsplit("/", 1)[-1])


def test_every_image_has_alt_text(site):
    missing = {
        page: [img["src"].rsplit("/", 1)[-1][:24] for img in found["images"] if _without_alt_text(img)]
        for page, found in site.items()
    }
    missing = {page: images for page, images in missing.items() if images}
    assert not missing, f"images without alt text: {missing}"


def legend_reads_at(img: dict) -> float | None:
    """How large, in points, a figure's legend reads on the page: its size in the figure, scaled by
    the share of its width the page shows it at (figures wider than the text column shrink)."""
    if not img.get("legend_pt") or not img.get("width") or not img.get("shown"):
        return None
    return img["legend_pt"] * (img["shown"] / img["width"]) * img["dpi"] / 96


def test_figure_legends_read_at_9_points_or_more(site):
    small = {
        page: [round(pt, 1) for img in found["images"] if (pt := legend_reads_at(img)) is not None and pt < 8.95]
        for page, found in site.items()
    }
    small = {page: sizes for page, sizes in small.items() if sizes}
    assert not small, f"legends smaller than 9 pt at the column's width: {small}"


@pytest.mark.parametrize("page", PAGES)
def test_no_request_leaves_the_site(site, page):
    inside = SITE.as_uri() + "/"
    outside = [u for u in site[page]["requests"] if not u.startswith((inside, "data:", "blob:", "about:"))]
    assert not outside, f"requests outside the site's folder: {outside}"


@pytest.mark.parametrize("page", PAGES)
def test_no_javascript_error(site, page):
    assert not site[page]["console"], f"console errors: {site[page]['console']}"


@pytest.mark.parametrize("page", PAGES)
def test_no_widget_is_left_unrendered(site, page):
    """The site loads no widget embedder (``nb_ipywidgets_js`` is empty) and renders no widget view
    (``nb_mime_priority_overrides``): an explorer shows its kernel-free frames instead."""
    assert site[page]["widgets"] == 0, "an ipywidgets view that no script renders"


def test_the_explorers_switch_frames_without_a_kernel(site):
    explorers = {page: found["explorers"] for page, found in site.items() if found["explorers"]}
    assert set(explorers) == {"chapters/01-boundary-shifting.html", "chapters/02-patch-backdoors.html"}
    for page, found in explorers.items():
        for explorer in found:
            assert explorer["before"] and explorer["after"] and explorer["before"] != explorer["after"], page


def test_every_chapter_has_a_screenshot(site):
    chapters = {Path(p).stem for p in PAGES if p.startswith("chapters/")}
    assert chapters and all((SCREENSHOTS / f"{c}.png").stat().st_size > 0 for c in chapters)
