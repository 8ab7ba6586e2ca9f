"""Coordinator files: atomic writes, a full disk, and the job summary built from the folder."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from coordinator_support import Sim, held

from printmesh_coordinator import store as store_module
from printmesh_coordinator.messages import (
    PublishCapture,
    SendCapture,
    SendMove,
    Tick,
    WriteFailed,
    WriteImage,
    WriteMetadata,
)
from printmesh_coordinator.state import job_name, stamp
from printmesh_coordinator.storage import oserror as _oserror
from printmesh_coordinator.store import SUMMARY_NAME, Store
from printmesh_core.models.coordinator import CaptureFailure, LayerCapture


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    store = Store(tmp_path / "caps")
    path = store.write("octo/job/a.jpg", b"\xff\xd8data\xff\xd9")
    assert path.read_bytes() == b"\xff\xd8data\xff\xd9"
    store.write("octo/job/a.jpg", b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.jpg"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_honour_the_umask_like_an_ordinary_file(tmp_path, umask):
    """mkstemp makes 0600 files; a web server running as another user must be able to serve the images."""
    old = os.umask(umask)
    try:
        store = Store(tmp_path / "caps")
        image = store.write("octo/job/a.jpg", b"\xff\xd8data\xff\xd9")
        replaced = store.write("octo/job/a.jpg", b"\xff\xd8other\xff\xd9")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert image == replaced
    assert image.stat().st_mode & 0o777 == 0o666 & ~umask == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_write_with_fsync(tmp_path):
    Store(tmp_path, fsync=True).write("x/y.json", b"{}")
    assert (tmp_path / "x/y.json").read_bytes() == b"{}"


def test_a_full_disk_raises_keeps_the_old_file_and_removes_the_partial_one(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.write("octo/job/a.jpg", b"old")

    def full(fd: int, data: bytes) -> None:
        os.write(fd, data[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_module, "_write_fully", full)
    with pytest.raises(OSError) as exc:
        store.write("octo/job/a.jpg", b"new image")
    assert _oserror(exc.value) == "No space left on device"
    assert (tmp_path / "octo/job/a.jpg").read_bytes() == b"old"
    assert sorted(p.name for p in (tmp_path / "octo/job").iterdir()) == ["a.jpg"]


def test_paths_cannot_leave_the_captures_dir(tmp_path):
    with pytest.raises(OSError, match="outside captures_dir"):
        Store(tmp_path / "caps").write("../escape.jpg", b"x")


def test_disk_full_through_the_machine_is_recorded_and_the_print_released(tmp_path, monkeypatch):
    """The shell's part: an OSError from the store becomes WriteFailed, and the machine reports it."""
    store = Store(tmp_path)
    monkeypatch.setattr(store_module, "_write_fully", lambda fd, data: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))  # fmt: skip
    sim = Sim().ready()
    sim.feed(held())
    sim.ok(sim.last(SendMove))
    sim.feed(Tick(), dt=0.5)
    sim.capture(sim.last(SendCapture))
    write = sim.last(WriteImage)
    with pytest.raises(OSError) as exc:
        store.write(write.path, write.data)
    sim.feed(WriteFailed(write.path, _oserror(exc.value)))
    sim.ok(sim.pending_command(), {"reason": "requested", "returned": True})
    sim.feed(WriteFailed(sim.last(WriteMetadata).path, "No space left on device"))
    md = sim.last(PublishCapture).metadata
    assert [f.kind for f in md.failures] == ["write_failed", "write_failed"]
    assert "No space left on device" in md.failures[0].message and md.metadata_path is None


def layer(tmp: Path, coordinator: str, layer_no: int, images: int, failures: int = 0, hold: float = 2.0) -> None:
    sim = Sim(now=1000.0 + layer_no)
    sim.ready()
    sim.feed(held(hold_id=layer_no, layer=layer_no))
    sim.run_grid()
    sim.finish()
    md = sim.last(PublishCapture).metadata
    md = md.model_copy(update={"coordinator": coordinator, "images": md.images[:images]})
    if failures:
        fail = CaptureFailure(kind="camera_offline", message="gone", at=1.0, point=images)
        md = md.model_copy(update={"failures": [fail] * failures, "complete": False})
    md = LayerCapture.model_validate(md.model_dump() | {"timings": md.timings.model_dump() | {"hold_duration": hold}})
    path = tmp / str(md.metadata_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(md.model_dump_json())


def test_summary_is_built_from_every_metadata_file_in_the_job_folder(tmp_path):
    layer(tmp_path, "coord-a", 5, 9)
    layer(tmp_path, "coord-b", 10, 9)
    layer(tmp_path, "coord-a", 15, 3, failures=1, hold=4.5)
    job = job_name("folder/cube.gcode", 400.0)
    (tmp_path / "octo" / job / "layer_0020_metadata_garbage.json").write_text("{not json")
    s = Store(tmp_path).summary("octo", job, "done", None, None, 2000.0)
    assert s is not None
    assert (s.layers_captured, s.layers_held, s.images) == ([5, 10, 15], [5, 10, 15], 21)
    assert s.total_hold_time == 8.5 and s.coordinators == ["coord-a", "coord-b"]
    assert [(f.layer, f.kind, f.point) for f in s.failures] == [(15, "camera_offline", 3)]
    assert s.gcode_file == "folder/cube.gcode" and s.print_start_time == 400.0 and s.outcome == "done"


def test_summary_keeps_a_known_outcome_when_this_coordinator_only_saw_the_print_stop(tmp_path):
    layer(tmp_path, "coord-a", 5, 9)
    job = job_name("folder/cube.gcode", 400.0)
    store = Store(tmp_path)
    done = store.summary("octo", job, "cancelled", None, None, 1.0)
    assert done is not None
    store.write(f"octo/{job}/{SUMMARY_NAME}", done.model_dump_json().encode())
    again = store.summary("octo", job, "unknown", None, None, 2.0)
    assert again is not None and again.outcome == "cancelled"


def test_no_summary_without_a_job_folder(tmp_path):
    assert Store(tmp_path).summary("octo", "nothing_19700101_000000", "done", None, None, 1.0) is None


def test_job_names_are_derived_the_same_way_by_everyone():
    assert job_name("sub/dir/My Part v2.gcode", 1700000000.0) == "My_Part_v2_20231114_221320"
    assert job_name(None, None) == "job_unknown-start" and job_name("..gcode", 0.0) == "job_19700101_000000"
    assert stamp(1700000000.0) == "20231114_221320"


def test_a_symbolic_link_planted_as_the_file_is_replaced_never_followed(tmp_path):
    """The folder is resolved once per job; the file name is not resolved at all, so a link
    planted under an image's name must be replaced by the image, never written through."""
    store = Store(tmp_path / "caps")
    store.write("octo/job/a.jpg", b"first")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    os.symlink(outside, tmp_path / "caps/octo/job/b.jpg")
    store.write("octo/job/b.jpg", b"image")
    assert outside.read_bytes() == b"keep"
    assert not (tmp_path / "caps/octo/job/b.jpg").is_symlink()
    assert (tmp_path / "caps/octo/job/b.jpg").read_bytes() == b"image"


def test_a_job_folder_removed_while_remembered_is_made_again(tmp_path):
    store = Store(tmp_path / "caps")
    store.write("octo/job/a.jpg", b"1")
    shutil.rmtree(tmp_path / "caps/octo/job")
    store.write("octo/job/b.jpg", b"2")
    assert (tmp_path / "caps/octo/job/b.jpg").read_bytes() == b"2"


def test_a_job_folder_that_is_a_link_out_of_the_root_is_refused(tmp_path):
    """Resolution is per job folder: a new folder through a link out of the root is refused."""
    store = Store(tmp_path / "caps")
    (tmp_path / "elsewhere").mkdir()
    store.write("octo/job/a.jpg", b"1")
    os.symlink(tmp_path / "elsewhere", tmp_path / "caps/octo/job2")
    with pytest.raises(OSError, match="outside captures_dir"):
        store.write("octo/job2/a.jpg", b"x")
    assert list((tmp_path / "elsewhere").iterdir()) == []
