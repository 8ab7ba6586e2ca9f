"""The S3 spool on the coordinator's disk: order kept, whole entries, bounded, and it outlives a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from printmesh_coordinator.spool import Spool, SpoolFull

NAMES = ["p/j/layer_0005_pos_00_t.jpg", "p/j/layer_0005_pos_01_t.jpg", "p/j/layer_0005_metadata_t.json"]


def drained(spool: Spool) -> list[tuple[str, bytes]]:
    out = []
    while (entry := spool.oldest()) is not None:
        out.append(entry)
        assert spool.done() == entry[0]
    return out


def test_entries_come_back_oldest_first_and_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10_000_000)
    assert not (tmp_path / "spool").exists(), "made at the first entry, not before"
    for i, name in enumerate(NAMES):
        spool.put(name, bytes([i]) * 1000 + b"\n\x00binary")
    assert len(spool) == 3 and spool.holds("p/j") and not spool.holds("p/other") and not spool.holds("p/j2")
    assert spool.find(NAMES[1]) == b"\x01" * 1000 + b"\n\x00binary"
    assert spool.find("p/j/missing.jpg") is None
    assert [name for name, _ in drained(spool)] == NAMES
    assert len(spool) == 0 and spool.bytes == 0 and not list((tmp_path / "spool").iterdir())


def test_what_is_left_is_uploaded_after_a_restart_in_the_same_order(tmp_path: Path) -> None:
    first = Spool(tmp_path, 10_000_000)
    for name in NAMES:
        first.put(name, name.encode())
    assert first.oldest() == (NAMES[0], NAMES[0].encode())
    first.done()  # the first was uploaded; then the coordinator stopped
    again = Spool(tmp_path, 10_000_000)  # a new process: the entries on disk
    again.put("p/j/job_summary.json", b"{}")
    assert [name for name, _ in drained(again)] == [*NAMES[1:], "p/j/job_summary.json"]


def test_a_full_spool_refuses_the_next_file_and_keeps_every_earlier_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 2500)
    spool.put(NAMES[0], b"x" * 1000)
    spool.put(NAMES[1], b"x" * 1000)
    with pytest.raises(SpoolFull, match=r"is full .*spool_max_mb.*layer_0005_metadata_t.json not kept"):
        spool.put(NAMES[2], b"x" * 1000)
    assert [name for name, _ in drained(spool)] == NAMES[:2]


def test_a_name_that_would_leave_the_bucket_prefix_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10_000)
    for bad in ("../x.jpg", "p/../../x.jpg", "/abs.jpg", "p//x.jpg"):
        with pytest.raises(OSError, match="refusing to write outside"):
            spool.put(bad, b"x")
    assert len(spool) == 0


def test_a_stray_or_damaged_file_in_the_folder_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "000000000000.spool").write_bytes(b"../../etc/passwd\nroot")
    (tmp_path / "notes.txt").write_text("mine")
    spool = Spool(tmp_path, 10_000)
    assert len(spool) == 0
    spool.put(NAMES[0], b"a")
    assert [name for name, _ in drained(spool)] == [NAMES[0]]
    assert (tmp_path / "000000000000.spool").exists() and (tmp_path / "notes.txt").exists()
