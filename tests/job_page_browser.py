"""The job page in a real browser: Debian's /usr/bin/chromium driven by Python playwright.

No browser is ever downloaded (never ``playwright install``): playwright's own driver
launches the system chromium through ``executable_path``. ``check_job_page`` is what
every browser test asserts about a page, from a synthetic folder or an end-to-end run.
"""

from __future__ import annotations

import hashlib
import os
import time
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
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -r requirements-dev.txt (never `playwright install`)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _check_thumbnails(folder: Path, pairs: list[tuple[str, str]]) -> None:
    """Each thumbnail is its own image scaled down: closer to it than to any other image of the job."""
    thumbs: dict[str, Any] = {href: cv2.imread(str(folder / src)) for href, src in pairs}
    fulls: dict[str, Any] = {href: cv2.imread(str(folder / href)) for href, _ in pairs}
    assert all(v is not None for v in [*thumbs.values(), *fulls.values()]), "every image and thumbnail decodes"
    for href, thumb in thumbs.items():
        size = (thumb.shape[1], thumb.shape[0])

        def diff(other: str, thumb: Any = thumb, size: tuple[int, int] = size) -> float:
            small = cv2.resize(fulls[other], size, interpolation=cv2.INTER_AREA)
            return float(np.mean(np.abs(small.astype(np.int16) - thumb.astype(np.int16))))

        own = diff(href)
        assert own < 8, f"thumbnail of {href} differs from it by {own:.1f}"
        closest = min(fulls, key=diff)
        assert closest == href or diff(closest) == own, f"thumbnail of {href} looks more like {closest}"


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
    _check_thumbnails(folder, [(s["href"], s["img"]) for s in shots])
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


def final_page(folder: Path, timeout: float = 90.0) -> Path:
    """Wait for the coordinator's worker to finish the page (videos encoded after the summary)."""
    from printmesh_coordinator.page import page_state

    end = time.monotonic() + timeout
    while page_state(folder) != "final":
        assert time.monotonic() < end, f"the job page of {folder} was not finished within {timeout:g} s"
        time.sleep(0.2)
    return folder / "index.html"


def shot_path(name: str) -> Path | None:
    """Where to save a screenshot of the page: ``$PRINTMESH_PAGE_SHOTS/<name>.png`` when that is set."""
    where = os.environ.get("PRINTMESH_PAGE_SHOTS")
    return Path(where) / f"{name}.png" if where else None
