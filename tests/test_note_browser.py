"""The HTML note of a generated smoke study, opened by a real browser (headless Chromium through Playwright).

String checks cannot tell whether an image decodes, whether the page throws, or whether a label that is a
<script> element runs; a browser can. Debian's `chromium` package (`make setup` installs it as root).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from markup_data import HOSTILE_LABEL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root in a container: no sandbox, no GPU, and none of Chromium's own network traffic (the network is closed).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: install Debian's package "
                                                         "with `apt-get install chromium` (make setup does, as root)")


def render_in_chromium(html: Path, pdf: Path, profile: Path) -> dict:
    """Open `html` in headless Chromium; return its images, console problems, what ran, its text; print `pdf`."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (pip install -e '.[test]')")
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                                args=CHROMIUM_FLAGS)
        try:
            page = context.new_page()
            page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url[:80]}"))
            page.goto(html.as_uri(), wait_until="load")
            state = page.evaluate("""() => ({
                images: Array.from(document.images).map(img => ({src: img.src.slice(0, 40), complete: img.complete,
                                                                 width: img.naturalWidth})),
                injected: window.__injected === undefined ? null : window.__injected,
                scripts: Array.from(document.scripts).map(s => s.textContent.slice(0, 80)),
                text: document.body.innerText,
            })""")
            page.pdf(path=str(pdf), format="A4", print_background=True)
        finally:
            context.close()
    return {**state, "problems": problems, "pdf": pdf}


def broken_images(state: dict) -> list[dict]:
    return [image for image in state["images"] if not image["complete"] or image["width"] == 0]


@pytest.fixture(scope="module")
def rendered(markup_smoke_run, tmp_path_factory) -> dict:
    """The generated note loaded in Chromium."""
    folder = tmp_path_factory.mktemp("browser")
    return render_in_chromium(markup_smoke_run / "note" / "note.html", folder / "note.pdf", folder / "profile")


def test_the_browser_checks_catch_a_broken_note(tmp_path):
    """The checks below can fail: an unescaped label runs, a corrupt image has no width, a throw is reported."""
    html = tmp_path / "broken.html"
    html.write_text(f"<html><body><p>{HOSTILE_LABEL}</p><img src='data:image/png;base64,iVBORw0KGgo='>"
                    "<script>console.error('boom'); undefinedFunction();</script></body></html>", encoding="utf-8")
    state = render_in_chromium(html, tmp_path / "broken.pdf", tmp_path / "profile")
    assert state["injected"] == 1 and HOSTILE_LABEL not in state["text"]
    assert len(broken_images(state)) == 1
    assert any("boom" in p for p in state["problems"]) and any("undefinedFunction" in p for p in state["problems"])


def test_every_image_loads(rendered):
    assert rendered["images"], "the note has no images"
    assert not broken_images(rendered), broken_images(rendered)


def test_no_console_errors_or_failed_requests(rendered):
    assert rendered["problems"] == []


def test_a_script_label_stays_text(rendered):
    assert rendered["injected"] is None, "a <script> from the data ran in the note"
    assert not any("__injected" in script for script in rendered["scripts"])
    assert HOSTILE_LABEL in rendered["text"], "the markup label should be shown as text"


def test_prints_to_pdf(rendered, record_property):
    from pypdf import PdfReader

    pages = len(PdfReader(rendered["pdf"]).pages)
    record_property("note_pdf_pages", pages)
    print(f"\nnote.html printed to {pages} A4 page(s): {rendered['pdf']}")
    assert 1 <= pages <= 100
