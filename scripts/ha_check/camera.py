"""The camera agent's scenario: live, press, junk, unplug, birth, offline.

Synthetic cameras, no hardware: "bed" (preview every 1 s), "nozzle" (preview every 1 s, with an
offline flag file: a simulated unplug) and "side" (previews off: button and sensor, no camera).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from datetime import UTC, datetime
from typing import Any

from ha_check.common import Bus, Context, States, agent, all_in, check_birth, check_configs, check_table, state_of
from ha_check.common import stop_agent as stop


def _config(ctx: Context) -> str:
    return f"""camera:
  cameras:
    - name: bed
      title: Bed
      source: {{type: synthetic, fps: 10}}
      preview: {{interval: 1}}
    - name: nozzle
      title: Nozzle
      source: {{type: synthetic, fps: 5, offline_flag: {ctx.work}/unplugged}}
      preview: {{interval: 1}}
      reopen: {{min_delay: 0.5, max_delay: 1}}
    - name: side
      title: Side
      source: {{type: synthetic, fps: 0}}
      preview: {{interval: 0}}
"""


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, or None if it is not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _iso(value: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(value)
        return ts if ts.tzinfo is not None else None
    except (TypeError, ValueError):
        return None


def _available(st: States, eids: list[str]) -> bool:
    return all(e in st and st[e]["state"] != "unavailable" for e in eids)


def _live(ctx: Context, st: States, bus: Bus) -> None:
    c, node = ctx.check, ctx.node
    for eid in check_table(ctx, st, "live"):
        state = st[eid]["state"]
        c(state != "unavailable", f"live: {eid} available ({state})")
        if eid.startswith("camera."):
            c(state == "idle", f"live: {eid} is idle")
    status, ctype, body = ctx.ha.request(f"/api/camera_proxy/camera.{node}_bed")
    size = jpeg_size(body)
    c(status == 200 and ctype.startswith("image/jpeg") and size == (640, 360),
      f"live: HA's camera proxy serves the preview as JPEG ({status} {ctype} {size})")  # fmt: skip
    c(f"camera.{node}_side" not in st, "live: no camera entity for the camera with previews off")
    check_configs(ctx, bus, st, "live")


def _press(ctx: Context, bus: Bus, base: str) -> str:
    """Two presses through HA, then a capture requested over MQTT; returns the sensor's last state."""
    c, ha = ctx.check, ctx.ha
    button, sensor = ctx.eid("bed_capture"), ctx.eid("bed_last_capture")

    def responses() -> list[dict[str, Any]]:
        with bus.lock:
            return [json.loads(p) for t, p in bus.seen if t == f"{base}/res/capture"]

    def image_on(topic: str) -> bytes | None:
        with bus.lock:
            return next((p for t, p in bus.seen if t == topic), None)

    def attr(st: States, key: str) -> Any:
        return st.get(sensor, {}).get("attributes", {}).get(key)

    pressed_at = datetime.now(UTC)
    for _ in range(2):
        ha.press(button)
        time.sleep(0.3)
    bus.wait(lambda: len(responses()) >= 2, 10)
    got = responses()
    c(len(got) == 2 and all(r["ok"] for r in got), f"press: two presses, two answered captures ({len(got)})")
    c(len({r["id"] for r in got}) == 2 and all(r["id"].startswith("press-") for r in got),
      f"press: a fresh id per press ({[r['id'] for r in got]})")  # fmt: skip
    for r in got:
        img = image_on(r["data"]["topic"]) if r["ok"] else None
        ok = (
            img is not None and len(img) == r["data"]["size"] and hashlib.sha256(img).hexdigest() == r["data"]["sha256"]
        )
        c(ok, f"press: image on {r['data']['topic'] if r['ok'] else '?'} matches size and sha256")
    latest = got[-1]["data"] if got and got[-1]["ok"] else {}
    st = ha.wait(lambda st: attr(st, "sha256") == latest.get("sha256"), 10, 0.25)
    when = _iso(st.get(sensor, {}).get("state"))
    c(when is not None and abs((when - pressed_at).total_seconds()) < 10,
      f"press: {sensor} = time of the last capture ({state_of(st, sensor)})")  # fmt: skip
    c(attr(st, "sha256") == latest.get("sha256"), f"press: {sensor} carries the capture's metadata as attributes")
    c(state_of(st, button) not in ("unknown", "unavailable"), f"press: {button} remembers the press")
    request = {"id": "coordinator-1", "camera": "bed", "label": "layer 3 grid 1/4"}
    bus.publish(f"{base}/cmd/capture", json.dumps(request))
    st = ha.wait(lambda st: attr(st, "label") == "layer 3 grid 1/4", 10, 0.25)
    c(attr(st, "capture_id") == "coordinator-1", "press: a capture requested over MQTT updates the sensor too")
    return str(st[sensor]["state"])


def _unplug(ctx: Context) -> None:
    c, ha = ctx.check, ctx.ha
    flag = ctx.work / "unplugged"
    flag.touch()
    gone = [ctx.eid("nozzle"), ctx.eid("nozzle_capture")]
    st = ha.wait(lambda st: all_in(st, gone, "unavailable"), 10, 0.25)
    c(all_in(st, gone, "unavailable"), "unplug: nozzle camera and button unavailable")
    c(
        state_of(st, ctx.eid("nozzle_last_capture")) != "unavailable",
        "unplug: nozzle last-capture sensor stays available",
    )
    c(state_of(st, ctx.eid("bed")) == "idle", "unplug: bed unaffected")
    flag.unlink()
    st = ha.wait(lambda st: all(e in st and st[e]["state"] != "unavailable" for e in gone), 10, 0.25)
    c(_available(st, gone), "unplug: back when the camera returns")


def run(ctx: Context) -> None:
    ha, ids, base = ctx.ha, ctx.component.ids(ctx.node), f"printmesh/{ctx.node}/camera"
    cams = [e for e in ids if e.startswith("camera.")]
    bus = Bus(ctx, f"{base}/res/capture", f"{base}/+/capture/+")
    try:
        with agent(ctx, _config(ctx)) as proc:
            st = ha.wait(lambda st: _available(st, ids) and all_in(st, cams, "idle"), 40, 0.25)
            ctx.dump("live_states.json", st)
            _live(ctx, st, bus)
            sensor = ctx.eid("bed_last_capture")
            before = _press(ctx, bus, base)
            bus.publish(f"{base}/bed/last_capture", "not json")
            bus.publish(f"{base}/bed/last_capture", b"")
            time.sleep(1.5)
            ctx.check(state_of(ha.states(), sensor) == before, "junk: non-JSON and empty messages keep the timestamp")
            _unplug(ctx)
            check_birth(ctx, bus, "bed", lambda st: state_of(st, ctx.eid("bed")) == "idle")
            stop(ctx, proc, ids, "every entity unavailable")
    finally:
        bus.rt.stop()
