"""The job page built from synthetic job folders (real JPEGs and metadata files, no broker)."""

from __future__ import annotations

import threading
from html.parser import HTMLParser
from pathlib import Path

import cv2
import pytest
from job_folders import frame, make_job

from printmesh_coordinator import page, page_html
from printmesh_coordinator.job_folder import read_job, safe_name
from printmesh_coordinator.page_worker import PageWorker
from printmesh_coordinator.timelapse import count_frames
from printmesh_core.models.coordinator import LayerCapture


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def parse(folder: Path) -> Tags:
    tags = Tags()
    tags.feed((folder / "index.html").read_text())
    return tags


def links(tags: Tags) -> list[str]:
    return [a[k] or "" for _, a in tags.tags for k in ("href", "src", "poster") if k in a]


def test_final_page_has_sheet_videos_plots_and_summary_with_relative_links_to_existing_files(tmp_path):
    folder = make_job(tmp_path, [5, 10, 15, 20])
    built = page.build(folder, final=True)
    tags = parse(folder)
    assert page.page_state(folder) == "final" and not tags.all("meta", **{"http-equiv": "refresh"})
    rows = [a for t, a in tags.tags if t == "tr" and "data-layer" in a]
    assert [r["data-layer"] for r in rows] == ["5", "10", "15", "20"]
    shots = tags.all("a", **{"class": "shot"})
    assert len(shots) == 36 and {a["data-index"] for a in shots} == {str(i) for i in range(9)}
    for link in links(tags):
        assert link and "://" not in link and not link.startswith("/") and ".." not in link, link
        assert (folder / link).is_file(), link
    assert len(tags.all("video")) == 9 and len(built.videos) == 9
    assert len(tags.all("svg")) == 2 and len(tags.all("rect")) == 4 + 4 * 5  # layer bars + 5 parts per hold
    text = " ".join(tags.text)
    assert "box.gcode" in text and "Images" in text and "36" in text and "done" in text


def test_every_video_reads_back_with_one_frame_per_layer_in_a_consistent_size(tmp_path):
    folder = make_job(tmp_path, [2, 4, 6, 8, 10], points=3, failed={6: 2})  # layer 6: only positions 0 and 1
    cv2.imwrite(str(next(folder.glob("layer_0008_pos_00_*.jpg"))), frame(8, 0, (640, 480)))  # a bigger frame
    built = page.build(folder, final=True)
    counts = {v.index: v.frames for v in built.videos}
    assert counts == {0: 5, 1: 5, 2: 4}
    for video in built.videos:
        path = folder / video.href
        assert count_frames(path) == video.frames
        capture = cv2.VideoCapture(str(path))
        sizes = set()
        while True:
            ok, img = capture.read()
            if not ok:
                break
            sizes.add(img.shape)
        capture.release()
        assert sizes == {(240, 320, 3)}, sizes


def test_incomplete_layers_are_marked_with_their_failure(tmp_path):
    folder = make_job(tmp_path, [5, 10], failed={10: 3})
    page.build(folder)
    tags = parse(folder)
    marked = [a["data-layer"] for t, a in tags.tags if t == "tr" and a.get("class") == "incomplete"]
    assert marked == ["10"]
    assert len(tags.all("td", **{"class": "missing"})) == 6
    html = (folder / "index.html").read_text()
    assert "capture_timeout: camera &lt;b&gt;bed&lt;/b&gt; timed out at 10" in html


def test_user_strings_are_escaped(tmp_path):
    evil = '<script>alert("x")</script>&\'.gcode'
    folder = make_job(tmp_path, [5], points=1, gcode_file=evil, job="x_<i>_20261204_120000", cameras=("a",))
    page.build(folder, final=True)
    html = (folder / "index.html").read_text()
    assert "<script>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;.gcode" in html
    assert "x_&lt;i&gt;_20261204_120000" in html


def test_names_in_metadata_never_reach_outside_the_job_folder(tmp_path):
    folder = make_job(tmp_path, [5], points=2)
    (tmp_path / "secret.jpg").write_bytes((folder / next(folder.glob("*.jpg")).name).read_bytes())
    meta_file = next(folder.glob("layer_*_metadata_*.json"))
    md = LayerCapture.model_validate_json(meta_file.read_bytes())
    images = [md.images[0].model_copy(update={"path": "../../../secret.jpg"}),
              md.images[1].model_copy(update={"path": "/etc/passwd"})]  # fmt: skip
    meta_file.write_text(md.model_copy(update={"images": images}).model_dump_json())
    (folder / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    assert safe_name(folder, "link.jpg") is None and safe_name(folder, "..") is None
    real = md.images[0].path.rsplit("/", 1)[1]
    assert safe_name(folder, f"octo/other/../{real}") == real and safe_name(folder, "x.jpg") is None
    page.build(folder, final=True)
    tags = parse(folder)
    assert [a["href"] for a in tags.all("a", **{"class": "shot"})] == []  # secret.jpg exists only outside
    assert not (folder / "page/thumbs/secret.jpg").exists() and not (folder / "page/thumbs/passwd.jpg").exists()
    for link in links(tags):
        assert (folder / link).resolve().is_relative_to(folder.resolve()), link


def test_running_page_reloads_itself_and_updates_only_new_thumbnails(tmp_path):
    folder = make_job(tmp_path, [5, 10], summary=False)
    first = page.build(folder)
    assert first.thumbs_written == 18 and not first.videos
    assert page.page_state(folder) == "running" and parse(folder).all("meta", **{"http-equiv": "refresh"})
    make_job(tmp_path, [5, 10, 15], summary=False)  # layer 15 arrives (5 and 10 rewritten identically)
    assert page.build(folder).thumbs_written == 9  # only the new layer's; existing thumbnails are kept
    assert page.build(folder).thumbs_written == 0
    assert page.build(folder, force=True).thumbs_written == 27
    assert not [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part", ".tmp.webm"))]


def test_several_cameras_get_a_column_and_a_video_each(tmp_path):
    folder = make_job(tmp_path, [3, 6], points=2, cameras=("top", "side"))
    built = page.build(folder, final=True)
    assert read_job(folder).columns == [("top", 0), ("top", 1), ("side", 0), ("side", 1)]
    assert sorted(Path(v.href).name for v in built.videos) == [
        "pos_00_side.webm", "pos_00_top.webm", "pos_01_side.webm", "pos_01_top.webm"]  # fmt: skip


def test_worker_builds_off_the_callers_thread_and_coalesces(tmp_path, monkeypatch):
    seen: list[tuple[Path, bool, int]] = []
    gate = threading.Event()

    def fake_build(folder: Path, final: bool = False, force: bool = False, stop: object = None) -> page_html.Built:
        gate.wait(10)
        seen.append((folder, final, threading.get_ident()))
        return page_html.Built(folder / "index.html")

    monkeypatch.setattr(page, "build", fake_build)
    worker = PageWorker()
    a, b = tmp_path / "a", tmp_path / "b"
    worker.update(a)  # taken at once by the worker, which waits on the gate
    for _ in range(3):
        worker.update(b)
    worker.finish(b)
    gate.set()
    assert worker.idle(10)
    worker.close(5)
    assert [(f, final) for f, final, _ in seen] == [(a, False), (b, True)]
    assert {ident for *_, ident in seen} != {threading.get_ident()}


@pytest.mark.parametrize("size", [(1920, 1080), (321, 241)])
def test_timelapse_frames_are_fitted_to_even_sides_within_720p(tmp_path, size):
    folder = make_job(tmp_path, [1, 2], points=1, size=size)
    (video,) = page.build(folder, final=True).videos
    capture = cv2.VideoCapture(str(folder / video.href))
    ok, img = capture.read()
    capture.release()
    assert ok and img.shape[1] <= 1280 and img.shape[0] <= 720 and img.shape[0] % 2 == img.shape[1] % 2 == 0


def test_a_rewritten_metadata_file_is_read_again(tmp_path):
    folder = make_job(tmp_path, [5], points=1)
    assert read_job(folder).rows[0].complete
    meta_file = next(folder.glob("layer_*_metadata_*.json"))
    md = LayerCapture.model_validate_json(meta_file.read_bytes())
    meta_file.write_text(md.model_copy(update={"complete": False}).model_dump_json())
    assert not read_job(folder).rows[0].complete


def test_a_second_final_build_keeps_videos_newer_than_their_frames(tmp_path):
    folder = make_job(tmp_path, [5, 10], points=1)
    (video,) = page.build(folder, final=True).videos
    first = (folder / video.href).stat().st_mtime_ns
    assert page.build(folder, final=True).videos == [video]
    assert (folder / video.href).stat().st_mtime_ns == first
    make_job(tmp_path, [5, 10, 15], points=1)  # a later layer: its frame is newer than the video
    (again,) = page.build(folder, final=True).videos
    assert again.frames == 3 and count_frames(folder / again.href) == 3
