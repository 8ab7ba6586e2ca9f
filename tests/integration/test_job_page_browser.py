"""The job page in Debian's chromium (playwright, executable_path): a synthetic job with a failed layer.

The end-to-end run's own page is checked the same way in ``test_capture_e2e.py``.
"""

from __future__ import annotations

from pathlib import Path

from job_folders import make_job
from job_page_browser import check_job_page, chromium, shot_path

from printmesh_coordinator import page
from printmesh_coordinator.watch_rules import sidecar_path
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.watch import WatchVerdict


def test_page_loads_without_errors_thumbnails_match_videos_play_and_the_plot_is_there(tmp_path):
    folder = make_job(tmp_path, [5, 10, 15, 20], failed={15: 4}, cameras=("top", "side"), points=2)
    page.build(folder, final=True)
    with chromium() as browser:
        seen = check_job_page(browser, folder, shot_path("synthetic_job_page"))
        assert seen == {"images": 3 * 4 + 4, "videos": 4}
        view = browser.new_page()
        view.goto((folder / "index.html").as_uri())
        assert view.locator("tr.incomplete td.failure").inner_text().startswith("incomplete")
        assert view.locator("tr.incomplete").get_attribute("data-layer") == "15"
        view.close()


def test_running_page_reloads_itself(tmp_path):
    folder = make_job(tmp_path, [5], points=1, summary=False)
    page.build(folder)
    with chromium() as browser:
        view = browser.new_page()
        view.goto((folder / "index.html").as_uri())
        assert view.locator('meta[http-equiv="refresh"]').get_attribute("content") == "10"
        assert view.locator("video").count() == 0 and view.locator("a.shot img").count() == 1
        view.close()


def test_a_wide_grid_scrolls_inside_the_contact_sheet_not_the_page(tmp_path):
    """A 3x3 grid is 10 columns of thumbnails; at a laptop's 1280 px the page keeps the window's width."""
    folder = make_job(tmp_path, [5, 10], points=9, summary=True)
    page.build(folder, final=True)
    with chromium() as browser:
        view = browser.new_page(viewport={"width": 1280, "height": 800})
        view.goto((folder / "index.html").as_uri())
        assert view.evaluate("document.documentElement.scrollWidth") <= 1280
        sheet = view.locator("#contact-sheet")
        assert sheet.evaluate("e => e.scrollWidth > e.clientWidth"), "the grid should be wider than the window here"
        view.close()


def test_the_geometry_warning_shows_on_a_page_that_loads_without_errors(tmp_path):
    """Watch verdicts whose silhouette overlapped the part poorly: the page says the camera's geometry
    is probably off, and it loads in a real browser like any other."""
    folder = make_job(tmp_path, [5, 10, 15], points=2)
    for n, file in enumerate(sorted(folder.glob("layer_*_metadata_*.json"))):
        md = LayerCapture.model_validate_json(file.read_bytes())
        verdict = WatchVerdict(printer=md.printer, job=md.job, layer=md.layer, verdict="ok", confidence=0.9,
                               score=0.1, problem=False, action="none", elapsed_ms=10, metadata_path=md.metadata_path,
                               silhouette=2, agreement=(0.18, 0.21, 0.7)[n])  # fmt: skip
        (folder / Path(sidecar_path(md.metadata_path or "")).name).write_text(verdict.model_dump_json())
    page.build(folder, final=True)
    with chromium() as browser:
        check_job_page(browser, folder)
        view = browser.new_page()
        view.goto((folder / "index.html").as_uri())
        note = view.locator(".watch-geometry")
        assert note.is_visible() and "median 0.21" in note.inner_text() and "--calibrate" in note.inner_text()
        view.close()
