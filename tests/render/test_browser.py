"""The report in a real browser: headless Chromium loads the page from a file, logs no error,
lays out every plot and image, and paints a screenshot that is not blank.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it when it runs as root). Where
it is absent the test skips, saying so, unless ``SEGDATA_REQUIRE_BROWSER=1`` says it must be there
(a CI run that installed it): then it fails. ``SEGDATA_SCREENSHOTS=DIR`` keeps the screenshot in DIR, to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
)

# collects every error event (a script error, an image or resource that failed) and console.error
CAPTURE = """<script>window.__errors = [];
addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.outerHTML) || e.type).slice(0, 300));
}, true);
var __ce = console.error; console.error = function () { window.__errors.push(Array.from(arguments).join(" ")); __ce.apply(console, arguments); };
</script>"""

# once loaded: every <img> decoded with a size, every plot laid out and drawn (its box and the box
# of what is drawn in it not empty); the verdict goes into an attribute that --dump-dom shows
CHECK = """<script>addEventListener("load", function () {
  var bad = [];
  var imgs = document.querySelectorAll("img"), svgs = document.querySelectorAll("svg.plot");
  imgs.forEach(function (im, k) { if (!im.complete || !(im.naturalWidth > 0) || !(im.getBoundingClientRect().width > 0)) bad.push("img " + k + " " + im.alt); });
  svgs.forEach(function (s, k) {
    var box = s.getBoundingClientRect(), g = s.querySelector("g"), inner = g ? g.getBBox() : {width: 0, height: 0};
    if (!(box.width > 0 && box.height > 0 && inner.width > 0 && inner.height > 0)) bad.push("svg " + k + " " + s.getAttribute("aria-label"));
  });
  document.body.setAttribute("data-check", JSON.stringify({images: imgs.length, plots: svgs.length, bad: bad, errors: window.__errors}));
});</script>"""


def find_browser() -> str | None:
    if os.environ.get("SEGDATA_BROWSER") == "none":  # to see the skip and the failure without uninstalling
        return None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if os.environ.get("SEGDATA_REQUIRE_BROWSER") == "1":
            pytest.fail("SEGDATA_REQUIRE_BROWSER=1 but Chromium is not installed: apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium): the report's browser test needs it")
    return path


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_in_chromium(browser, full_report, tmp_path):
    document = full_report.html
    assert "<script" not in document  # the report has none: these are the test's own
    page = tmp_path / "report.html"
    page.write_text(document.replace("<head>", "<head>" + CAPTURE, 1).replace("</body>", CHECK + "</body>", 1))
    url = page.as_uri()

    dom = run_browser(browser, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'data-check="([^"]*)"', dom.stdout)
    assert found, "the page's check did not run: " + dom.stderr[-2000:]
    check = json.loads(html.unescape(found.group(1)))
    assert check["errors"] == []
    assert check["bad"] == []
    assert check["plots"] == document.count("<svg ") and check["plots"] == 11
    assert check["images"] == document.count("<img ") and check["images"] == 9
    assert console_lines(dom.stderr) == []

    shot = tmp_path / "report.png"
    painted = run_browser(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,3000", url)
    assert painted.returncode == 0 and shot.is_file(), painted.stderr[-2000:]
    assert console_lines(painted.stderr) == []
    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape == (3000, 1200, 3)
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 200  # text, plots in several colours, anti-aliasing: far more than a blank page
    not_white = (rgb < 245).any(axis=2).mean()
    assert 0.03 < not_white < 0.9
    keep = os.environ.get("SEGDATA_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")


def test_a_broken_page_is_caught(browser, tmp_path):
    """The check sees what it is there for: an image that does not decode and a plot with nothing in it."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head>" + CAPTURE + "</head><body>"
        '<img src="data:image/png;base64,AAAA" alt="broken"><svg class="plot" aria-label="empty"><g></g></svg>'
        + CHECK
        + "</body></html>"
    )
    dom = run_browser(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    check = json.loads(html.unescape(re.search(r'data-check="([^"]*)"', dom.stdout).group(1)))
    assert check["bad"] == ["img 0 broken", "svg 0 empty"]
    assert len(check["errors"]) == 1


def test_report_prints(browser, full_report, tmp_path):
    """Printed (Chromium's PDF), every section starts a page of its own (``@media print``)."""
    page = tmp_path / "report.html"
    page.write_text(full_report.html)
    pdf = tmp_path / "report.pdf"
    printed = run_browser(
        browser, tmp_path / "profile", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri()
    )
    assert printed.returncode == 0 and pdf.is_file(), printed.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert pages >= len(full_report.sections)
