"""The camera's last images, kept for repeated capture requests: bounded by count and by bytes."""

from printmesh_camera.recent import RecentImages


def test_recent_images_are_bounded_by_count_and_bytes_oldest_first():
    recent = RecentImages(count=3, size=100)
    for i in range(4):
        recent.keep(f"t/{i}", bytes([i]) * 10)
    assert recent.get("t/0") is None and recent.get("t/3") == bytes([3]) * 10
    assert recent.kept == (3, 30)
    recent.keep("t/big", b"x" * 90)  # 120 bytes kept would be over: the oldest go
    assert recent.kept == (2, 100) and recent.get("t/1") is None and recent.get("t/2") is None
    recent.keep("t/huge", b"y" * 101)  # larger than the whole budget: not kept, nothing pushed out
    assert recent.get("t/huge") is None and recent.kept == (2, 100)
    recent.keep("t/3", b"z")  # the same topic again: replaced, not counted twice
    assert recent.get("t/3") == b"z" and recent.kept == (2, 91)
