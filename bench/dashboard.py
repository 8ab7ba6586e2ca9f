"""The Dashboard tab's cost on OctoPrint, and how fast a value reaches the screen.

A real ``octoprint serve`` (virtual printer, the bridge) prints the 20-layer sample file in
a loop, with the whole mesh around it (host agent, simulated-DHT sensors, a camera with
1 s previews, the coordinator capturing every 5 layers). Chromium (Debian's, through
playwright) is logged in to OctoPrint throughout; the windows alternate between the
Dashboard tab **closed** (OctoPrint's own Temperature tab shown) and **open**, so both
sides see the same print and the same machine noise.

* OctoPrint's CPU: utime + stime of the ``octoprint serve`` process from /proc, per window,
  as % of one core; the dashboard's extra = open - closed (goal: at most 2 %).
* Bytes/s to the browser: the websocket frames received (playwright), and the plugin's
  HTTP responses (camera previews, capture images), per window.
* Publish-to-screen latency: an extra sensor publishes a new temperature every 0.6 s
  (slower than the 2 updates/s per widget cap, so the cap adds nothing); a
  MutationObserver in the page stamps when each value appears; p50 and p99 of screen time
  minus publish time (same machine clock).

    .venv/bin/python bench/dashboard.py [--window 20] [--rounds 2] [--samples 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from dashboard_rig import Agents, login, start_mesh  # noqa: E402
from job_page_browser import chromium  # noqa: E402

from printmesh_core import contract  # noqa: E402
from printmesh_core.config import MqttConfig  # noqa: E402
from printmesh_core.models.sensors import SensorReading  # noqa: E402
from printmesh_core.mqtt import MqttRuntime  # noqa: E402
from printmesh_devkit.broker import LocalBroker  # noqa: E402

TAB = "#tab_plugin_printmesh"
TICKS = os.sysconf("SC_CLK_TCK")
PROBE = ("benchprobe", "probe")  # node, sensor
WATCH = """() => {
  window.__seen = {};
  const target = document.querySelector('#tab_plugin_printmesh');
  const look = () => {
    const el = document.querySelector('[data-sensor="benchprobe/probe"] .pm-temperature');
    if (el && !(el.textContent in window.__seen)) window.__seen[el.textContent] = Date.now();
  };
  new MutationObserver(look).observe(target, {subtree: true, childList: true, characterData: true});
}"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Traffic:
    """Bytes the page received: websocket frames, and the plugin's HTTP responses."""

    def __init__(self, page: Any) -> None:
        self.ws = 0
        self.frames = 0
        self.http = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        page.on("response", self._response)

    def _frame(self, frame: Any) -> None:
        self.ws += len(frame.encode() if isinstance(frame, str) else frame)
        self.frames += 1

    def _response(self, response: Any) -> None:
        if "/plugin/printmesh/" in response.url or "/api/plugin/printmesh" in response.url:
            self.http += int(response.headers.get("content-length") or 0)


# (row, tab shown, webcam widget on): the third arm tells what the camera preview costs
ARMS = (("closed", "#temp", True), ("open", TAB, True), ("open, no webcam", TAB, False))


def set_webcam(mesh: Any, on: bool) -> None:
    widgets = [{"id": "webcam", "enabled": on}]
    mesh.octoprint.api("POST", "/api/plugin/printmesh", {"command": "layout", "widgets": widgets})


def show(page: Any, tab: str) -> None:
    page.evaluate(f"() => $('a[href=\"{tab}\"]').tab('show')")


def keep_printing(mesh: Any) -> None:
    if mesh.octoprint.api("GET", "/api/job")["state"] == "Operational":
        mesh.octoprint.api("POST", "/api/job", {"command": "start"})


Row = tuple[float, float, float, float]


def window(mesh: Any, page: Any, traffic: Traffic, seconds: float) -> Row:
    """(CPU % of one core, websocket bytes/s, plugin HTTP bytes/s, websocket frames/s) over one window."""
    pid = mesh.octoprint.proc.pid
    ws0, http0, cpu0, t0 = traffic.ws, traffic.http, cpu_seconds(pid), time.monotonic()
    frames0 = traffic.frames
    while time.monotonic() - t0 < seconds:
        keep_printing(mesh)
        page.wait_for_timeout(1000)
    dt = time.monotonic() - t0
    cpu = 100 * (cpu_seconds(pid) - cpu0) / dt
    return cpu, (traffic.ws - ws0) / dt, (traffic.http - http0) / dt, (traffic.frames - frames0) / dt


def latency(runtime: MqttRuntime, page: Any, samples: int) -> list[float]:
    base = contract.component(runtime_topics(runtime), contract.SENSORS, PROBE[0])
    page.evaluate(WATCH)
    sent: dict[str, float] = {}
    for i in range(samples):
        value = round(10 + i * 0.1, 1)
        reading = SensorReading(sensor=PROBE[1], location="bench", temperature=value, humidity=50.0,
                                dew_point=None, unit="°C", samples=1, driver="simulated", model="DHT22")  # fmt: skip
        sent[f"{value:.1f} °C"] = time.time() * 1000
        contract.SENSOR_STATE.publish(runtime, base, reading, PROBE[1])
        page.wait_for_timeout(600)
    page.wait_for_timeout(1000)
    seen = page.evaluate("() => window.__seen")
    return [seen[k] - t for k, t in sent.items() if k in seen]


def runtime_topics(runtime: MqttRuntime) -> Any:
    from printmesh_core.topics import Topics

    return Topics(runtime.root, "bench")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=20, help="seconds per closed/open window")
    parser.add_argument("--rounds", type=int, default=2, help="closed/open pairs")
    parser.add_argument("--samples", type=int, default=100, help="latency samples")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="printmesh-dashboard-bench-"))
    with LocalBroker(kind="mosquitto") as broker:
        agents = Agents(broker.port, tmp)
        mesh = start_mesh(broker.port, tmp, agents)
        runtime = MqttRuntime(MqttConfig(host="127.0.0.1", port=broker.port), root="printmesh", client_id="bench-probe")
        runtime.start()
        runtime.wait_connected(10)
        try:
            mesh.start_print(speed=100)
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                traffic = Traffic(page)
                login(page, mesh.octoprint)
                page.wait_for_selector("#page-container-main", state="visible", timeout=30_000)
                page.wait_for_timeout(3000)
                rows: dict[str, list[Row]] = {side: [] for side, _, _ in ARMS}
                for _ in range(args.rounds):
                    for side, tab, webcam in ARMS:
                        set_webcam(mesh, webcam)
                        show(page, tab)
                        page.wait_for_timeout(3000)  # the page settles (a new viewer gets its snapshot)
                        rows[side].append(window(mesh, page, traffic, args.window))
                show(page, TAB)
                page.wait_for_timeout(2000)
                lat = latency(runtime, page, args.samples)
        finally:
            runtime.stop()
            mesh.octoprint.stop()
            agents.stop()
    report(rows, lat, args)


def report(rows: dict[str, list[Row]], lat: list[float], args: Any) -> None:
    mean = {side: [statistics.mean(r[i] for r in values) for i in range(4)] for side, values in rows.items()}
    print(f"# dashboard.py: {args.rounds} x ({args.window:.0f} s closed, {args.window:.0f} s open), printing;"
          f" {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| tab | OctoPrint CPU, % of one core | websocket bytes/s | websocket frames/s | plugin HTTP bytes/s |")
    print("|---|---|---|---|---|")
    for side, _, _ in ARMS:
        per = ", ".join(f"{r[0]:.1f}" for r in rows[side])
        m = mean[side]
        print(f"| {side} | {m[0]:.2f} ({per}) | {m[1]:.0f} | {m[3]:.1f} | {m[2]:.0f} |")
    for side in ("open", "open, no webcam"):
        d = [a - b for a, b in zip(mean[side], mean["closed"], strict=True)]
        print(f"| {side} - closed | **{d[0]:+.2f}** | {d[1]:+.0f} | {d[3]:+.1f} | {d[2]:+.0f} |")
    if lat:
        n = f"n={len(lat)}/{args.samples}"
        print(f"publish to screen: {n}, p50 {pct(lat, 0.5):.0f} ms, p99 {pct(lat, 0.99):.0f} ms, max {max(lat):.0f} ms")
    else:
        print("publish to screen: no value seen")


if __name__ == "__main__":
    main()
