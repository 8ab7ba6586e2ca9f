"""The job page in a real browser: Debian's /usr/bin/chromium driven by Python playwright.

No browser is ever downloaded (never ``playwright install``): playwright's own driver
launches the system chromium through ``executable_path``. ``check_job_page`` is what
every browser test asserts about a page, from a synthetic folder or an end-to-end run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from printmesh_core.models.coordinator import LayerCapture

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Any]:
    """A playwright Browser on the system chromium; fails (not skips) when either is missing."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run .ci/run or apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _looks_alike(thumb_path: Path, image_path: Path) -> float:
    """Mean absolute difference (0-255) between a thumbnail and its image scaled to the same size."""
    thumb = cv2.imread(str(thumb_path))
    image = cv2.imread(str(image_path))
    assert thumb is not None and image is not None, (thumb_path, image_path)
    small = cv2.resize(image, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.mean(np.abs(small.astype(np.int16) - thumb.astype(np.int16))))


def check_job_page(browser: Any, folder: Path, screenshot: Path | None = None) -> dict[str, int]:
    """Open ``folder/index.html`` over file:// and check it; counts of what was checked."""
    metas = [LayerCapture.model_validate_json(p.read_bytes()) for p in folder.glob("layer_*_metadata_*.json")]
    expected = {Path(i.path).name: i.sha256 for m in metas for i in m.images}
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"failed: {req.url}"))
    page.goto((folder / "index.html").as_uri(), wait_until="load")
    # the contact sheet: every image of every metadata file, linked, and its thumbnail matching it
    shots = page.eval_on_selector_all(
        "a.shot",
        "els => els.map(a => ({href: a.getAttribute('href'), sha: a.dataset.sha256,"
        " img: a.querySelector('img') && a.querySelector('img').getAttribute('src'),"
        " loaded: !!a.querySelector('img') && a.querySelector('img').complete"
        " && a.querySelector('img').naturalWidth > 0}))",
    )
    page.eval_on_selector_all("img", "els => els.forEach(i => i.scrollIntoView())")
    assert sorted(s["href"] for s in shots) == sorted(expected), "one linked thumbnail per image in the metadata"
    for shot in shots:
        full = folder / shot["href"]
        assert full.is_file() and full.resolve().parent == folder.resolve(), shot
        assert hashlib.sha256(full.read_bytes()).hexdigest() == expected[shot["href"]] == shot["sha"], shot
        assert shot["img"] and not shot["img"].startswith(("/", "file:", "http")), shot
        assert _looks_alike(folder / shot["img"], full) < 12, f"thumbnail {shot['img']} is not {shot['href']}"
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)", timeout=10_000)
    # the videos: each loads and plays
    videos = page.eval_on_selector_all("video.timelapse", "els => els.map(v => v.getAttribute('src'))")
    for i, src in enumerate(videos):
        assert (folder / src).is_file(), src
        handle = page.locator("video.timelapse").nth(i)
        handle.evaluate("v => { v.muted = true; return v.play(); }")
        handle.evaluate(
            "v => new Promise((ok, ko) => { const t = setTimeout(() => ko('timeout ' + v.readyState), 15000);"
            " const f = () => { if (v.readyState >= 2 && v.duration > 0 && v.currentTime > 0)"
            " { clearTimeout(t); ok(); } else setTimeout(f, 50); }; f(); })"
        )
        state = handle.evaluate("v => ({rs: v.readyState, d: v.duration, err: v.error && v.error.code})")
        assert state["rs"] >= 2 and state["d"] > 0 and state["err"] is None, (src, state)
    # the plots
    assert page.locator("svg.plot-holds rect").count() > 0 and page.locator("svg.plot-layers").count() == 1
    assert page.locator('meta[name="printmesh-page"]').get_attribute("content") == "final"
    assert page.locator('meta[http-equiv="refresh"]').count() == 0, "a finished page does not reload itself"
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("() => document.querySelectorAll('video').forEach(v => { v.pause(); v.currentTime = 0; })")
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    assert not errors, errors
    return {"images": len(shots), "videos": len(videos)}
