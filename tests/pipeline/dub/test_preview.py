"""Preview pages opened in a real headless Chromium (Debian's `chromium`, driven by Playwright):
the committed clip dubbed once with `--preview` (tiny random weights, dlib landmarks), then its
page and a batch index over a synthetic run with a failed job."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from musedub.infra.errors import InputError
from musedub.infra.sample_media import write_audio
from musedub.jobs.cli import main
from musedub.models.weights.layout import WeightsLayout
from musedub.pipeline.core.run import Run
from musedub.pipeline.dub.outcome import JobOutcome
from musedub.pipeline.dub.preview import preview_uri, write_batch_index
from musedub.pipeline.dub.preview.media import CLIP_SIDE
from musedub.pipeline.dub.preview.sampling import STILLS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no `chromium` binary on PATH: install Debian's chromium package (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dubbed(tiny_weights: WeightsLayout, speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed clip dubbed with `--preview` and 0.6 s of the real speech (15 frames, one
    generator batch); the output's name holds '#' and a space, which links must escape."""
    folder = tmp_path_factory.mktemp("preview")
    audio = write_audio(folder / "speech.wav", speech[16000:25600], 16000)
    output = folder / "out" / "dubbed #1.mp4"
    args = ["dub", "--video", str(ROOT / "tests/data/astronaut_25fps.mp4"), "--audio", str(audio)]
    args += ["--output", str(output), "--weights", str(tiny_weights.root), "--landmarks", "dlib"]
    # one torch thread: a 2-core machine shared with other processes slows two threads down several times
    assert main([*args, "--device", "cpu", "--batch-size", "16", "--cpu-threads", "1", "--preview"]) == 0
    return output


def _open(browser: Browser, uri: str, errors: list[str]) -> Page:
    """A page at `uri`, loaded; console errors, uncaught exceptions and dialogs (a script that ran)
    go to `errors`."""

    def dialog(opened: Dialog) -> None:
        errors.append(f"dialog: {opened.message}")
        opened.dismiss()

    page = browser.new_page(viewport={"width": 1050, "height": 900})
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", dialog)
    page.goto(uri)
    page.wait_for_load_state("load")
    return page


def _links(page: Page) -> list[Path]:
    """Every link of the page, resolved by the browser, as a local file path."""
    hrefs = page.evaluate("Array.from(document.links).map(a => a.href)")
    return [Path(unquote(urlparse(h).path)) for h in hrefs]


@pytest.mark.slow
def test_job_preview_loads_and_plays_in_chromium(browser: Browser, dubbed: Path) -> None:
    errors: list[str] = []
    page = _open(browser, Path(preview_uri(str(dubbed))).as_uri(), errors)
    sizes = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert len(sizes) == STILLS and min(sizes) > 0, sizes  # every still decoded
    page.wait_for_function("document.querySelector('video').readyState >= 2")  # metadata and a frame decoded
    assert page.evaluate("document.querySelector('video').videoWidth") == 2 * CLIP_SIDE
    page.evaluate("document.querySelector('video').play()")
    page.wait_for_function("document.querySelector('video').currentTime > 0")  # it plays
    assert page.locator("svg polyline").count() >= 2  # mouth opening (output faces found) and audio level
    text = page.inner_text("body")
    assert "the source has no audio: the largest face" in text  # the report's choice and why
    assert "cycle: the dub audio sets the length" in text and "Generate" in text
    assert "What is on this page" in text
    if os.environ.get("MUSEDUB_PREVIEW_SCREENSHOT") == "1":
        page.screenshot(path=str(ROOT / "docs" / "preview.png"), full_page=True)
    assert errors == []


@pytest.mark.slow
def test_batch_index_links_previews_and_shows_errors(browser: Browser, dubbed: Path, tmp_path: Path) -> None:
    run = Run(str(tmp_path / "runs"))
    bad_job = "<b>bad</b> job"
    message = f"video {tmp_path}/<script>alert(1)</script>.mp4 does not exist or is not a file: check the path"
    run.errors.record(InputError(message), bad_job, "plan")
    jobs = [
        JobOutcome("dubbed", "done", str(dubbed), frames=15),
        JobOutcome("earlier", "up to date", str(tmp_path / "earlier.mp4"), frames=50),
        JobOutcome(bad_job, "failed", str(tmp_path / "bad.mp4"), error=message),
    ]
    counts = {"done": 1, "up to date": 1, "failed": 1}
    run.write_summary({"state": "finished", "counts": counts, "jobs": [asdict(j) for j in jobs]})
    index = write_batch_index(run.uri)
    errors: list[str] = []
    page = _open(browser, Path(index).as_uri(), errors)
    rows = page.locator("table tr")
    assert rows.count() == 4
    assert "preview" in rows.nth(1).inner_text() and "none" in rows.nth(2).inner_text()
    failed = rows.nth(3).inner_text()
    assert bad_job in failed and f"plan: {message}" in failed  # shown as text, never run as markup
    links = _links(page)
    assert links[0] == Path(preview_uri(str(dubbed))) and len(links) == 2
    assert all(p.is_file() for p in links)
    failed_page = _open(browser, links[1].as_uri(), errors)
    assert message in failed_page.inner_text("body") and bad_job in failed_page.inner_text("h1")
    assert _links(failed_page) == [Path(index)]
    assert errors == []
