"""The keys that open the preview route: signed, expiring, never accepted from elsewhere."""

from __future__ import annotations

from manual_clock import ManualClock

from octoprint_printmesh.dashboard.preview_keys import PreviewKeys


def test_a_key_is_good_until_it_expires() -> None:
    clock = ManualClock(1_800_000_000.0)
    keys = PreviewKeys(ttl=120, clock=clock, secret=b"s" * 32)
    key = keys.issue()
    assert keys.valid(key)
    clock.now += 119
    assert keys.valid(key)
    clock.now += 2
    assert not keys.valid(key)


def test_forged_malformed_and_foreign_keys_are_refused() -> None:
    clock = ManualClock(1_800_000_000.0)
    keys = PreviewKeys(ttl=120, clock=clock, secret=b"s" * 32)
    other = PreviewKeys(ttl=120, clock=clock, secret=b"t" * 32)
    key = keys.issue()
    expires, _, signature = key.partition(".")
    assert not keys.valid(other.issue()), "a key from another secret (another OctoPrint, a restart)"
    assert not keys.valid(f"{int(expires) + 3600}.{signature}"), "a later expiry with the old signature"
    for bad in ("", ".", key + "0", key[:-1], "-1." + signature, f"{expires}", "x" * 10_000, f"1e9.{signature}"):
        assert not keys.valid(bad), bad


def test_a_key_from_a_clock_far_ahead_is_refused() -> None:
    clock = ManualClock(1_800_000_000.0)
    keys = PreviewKeys(ttl=120, clock=clock, secret=b"s" * 32)
    clock.now += 3600
    key = keys.issue()
    clock.now -= 3600
    assert not keys.valid(key), "valid for an hour more than the ttl allows"


def test_each_process_has_its_own_secret() -> None:
    assert not PreviewKeys().valid(PreviewKeys().issue())
