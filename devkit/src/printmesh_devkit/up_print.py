"""The printing half of the main job: OctoPrint with its virtual printer, a sample print, progress.

``printmesh up --octoprint VENV --print FILE`` starts OctoPrint from its own venv with the
bridge pointed at the job's broker, waits until the coordinator has armed its plan on the
printer, prints the file, and shows one line per layer, hold and capture instead of the
raw message stream. It ends when the coordinator has written the job summary and then
finished the job page (its timelapse videos are encoded after the summary, so the agents
must keep running until the page says ``final``; the page is checked by its text, the
devkit does not import the coordinator).

Only this job is reported, on a broker others may share (:meth:`PrintJob.ours`): the view
speaks MQTT 3.1.1 and connects before OctoPrint starts, so a message with the retain flag
was stored before the job began and is ignored; a capture or summary counts only when it is
about this job's printer and its print started after ``up`` uploaded the file. Another live
node with the same node id is refused before anything starts (preflight.py).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from pathlib import Path

from printmesh_core import contract
from printmesh_core.config import AgentSettings, MqttConfig
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import HoldEnded, HoldStarted, PrinterEvent, PrinterHold
from printmesh_core.models.watch import WatchVerdict
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import Topics
from printmesh_devkit.broker import free_port, port_open
from printmesh_devkit.virtual_octoprint import PASSWORD, USER, OctoPrint, start_octoprint

SPEED = ["M220 S300"]  # the virtual printer at 3x: a 30-layer sample prints in about a minute
CLOCK_SLACK = 5.0  # seconds: OctoPrint's print start time against the moment `up` uploaded the file
PAGE_WAIT = 120.0  # seconds `up` waits after the summary for the coordinator to finish the job page
PAGE_FINAL = 'name="printmesh-page" content="final"'  # the page's own marker (coordinator/page_html.py)
CAPTURES_KEPT = 1000  # layer metadata the progress view keeps (it only prints them as they come)


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


class PrintJob:
    def __init__(self, venv: Path, gcode: Path, settings: AgentSettings, mqtt: MqttConfig, workdir: Path) -> None:
        self.venv, self.gcode, self.settings, self.mqtt = venv, gcode, settings, mqtt
        self.workdir = workdir
        self.topics = Topics(settings.topic_root, settings.node_id)
        self.printer = self.topics.component(contract.PRINTER)
        self.octoprint: OctoPrint | None = None
        self.armed = threading.Event()
        self.done = threading.Event()
        self.summary: JobSummary | None = None
        self.captures: deque[LayerCapture] = deque(maxlen=CAPTURES_KEPT)  # bounded: anybody may publish
        self.verdicts: deque[WatchVerdict] = deque(maxlen=CAPTURES_KEPT)
        self.uploaded_at: float | None = None  # Unix seconds; nothing counts as this job's before it
        self.page_final: bool | None = None  # None: not waited for (no summary, or interrupted)

    # ------------------------------------------------------------- OctoPrint
    def start_octoprint(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        mqtt: dict[str, object] = {"port": self.mqtt.port, "protocol": self.mqtt.protocol}
        if self.mqtt.hosts:  # a cluster: the plugin gets the same list of brokers
            mqtt["hosts"] = [str(b) for b in self.mqtt.brokers]
            mqtt["max_subscribe_qos"] = self.mqtt.max_subscribe_qos
        else:
            mqtt["host"] = self.mqtt.host
        plugin = {"node_id": self.settings.node_id, "topic_root": self.settings.topic_root, "mqtt": mqtt}
        port = 5000 if not port_open("127.0.0.1", 5000) else free_port()
        self.octoprint = start_octoprint(self.venv, self.workdir, plugin, port=port)
        say(f"# started OctoPrint {self.octoprint.url} (user {USER}, password {PASSWORD}), virtual printer")
        say(f"# the mesh's Dashboard tab: {self.octoprint.url}/#tab_plugin_printmesh (kiosk: /plugin/printmesh/kiosk)")

    def start_print(self, stop: threading.Event) -> bool:
        assert self.octoprint is not None
        self.octoprint.wait_operational(90)
        deadline = time.monotonic() + 60
        while not self.armed.is_set() and time.monotonic() < deadline and not stop.is_set():
            self.armed.wait(0.2)
        if not self.armed.is_set():
            say("# the coordinator did not arm its plan on the printer within 60 s: printing without captures")
        self.octoprint.api("POST", "/api/printer/command", {"commands": SPEED})
        self.uploaded_at = time.time()
        self.octoprint.upload(self.gcode.name, self.gcode.read_bytes())
        say(f"# printing {self.gcode}")
        say(f"# watch the traffic meanwhile: {self._sub_command(self.mqtt.brokers[0].port)}")
        return True

    def stop(self) -> None:
        if self.octoprint is not None:
            self.octoprint.stop()

    # --------------------------------------------------------------- progress
    def watch(self, rt: MqttRuntime) -> None:
        """Typed through the contract; captures and summaries from any coordinator, about our printer."""
        contract.PRINTER_LAYER.subscribe(rt, self.printer, self._layer)
        contract.PRINTER_EVENT.subscribe(rt, self.printer, self._event)
        contract.PRINTER_HOLD.subscribe(rt, self.printer, self._hold)
        coordinators, me = contract.wildcard(contract.COORDINATOR), self.settings.node_id
        contract.COORDINATOR_CAPTURE.subscribe(rt, coordinators, self._capture, me)
        contract.COORDINATOR_SUMMARY.subscribe(rt, coordinators, self._summary, me)
        contract.COORDINATOR_WATCH.subscribe(rt, coordinators, self._watch, me)

    def ours(self, message: Message, print_start: float | None = None, printer: str | None = None) -> bool:
        """Live (not retained from before the view connected), after our upload, about our printer."""
        if message.retain or self.uploaded_at is None:
            return False
        if printer is not None and printer != self.settings.node_id:
            return False
        return print_start is None or print_start >= self.uploaded_at - CLOCK_SLACK

    def _layer(self, event: LayerEvent, message: Message) -> None:
        if not self.ours(message):
            return
        total = f"/{event.total_layers}" if event.total_layers else ""
        say(f"layer {event.layer}{total}  z={event.z:.2f} mm")

    def _hold(self, hold: PrinterHold, message: Message) -> None:
        if not message.retain and hold.armed is not None:
            self.armed.set()

    def _event(self, event: PrinterEvent, message: Message) -> None:
        if not self.ours(message):
            return
        name, ours = event.event, event.source == "printmesh"
        try:
            if ours and name == contract.HELD:
                say(f"  held at layer {contract.event_body(HoldStarted, event).layer}: capturing")
            elif ours and name == contract.RELEASED:
                ended = contract.event_body(HoldEnded, event)
                say(f"  released ({ended.reason}), head returned: {ended.returned}")
            elif name in contract.PRINT_ENDINGS or name == "PrintResumed":
                say(f"# {name}")
            elif name == "PrintPaused":
                say(f"# PrintPaused: the print waits. {self._resume_hint()}")
        except contract.Unreadable as exc:
            say(f"# unexpected {name} event: {exc}")

    def _capture(self, capture: LayerCapture, message: Message) -> None:
        if not self.ours(message, capture.print_start_time, capture.printer):
            return
        self.captures.append(capture)
        t = capture.timings
        say(
            f"  layer {capture.layer}: {len(capture.images)} images, hold {t.hold_duration:.2f} s "
            f"(moves {t.waiting_for_moves:.2f}, settle {t.settle:.2f}, capture {t.capture:.2f}, "
            f"overhead {t.overhead * 1000:.0f} ms){'' if capture.complete else ', INCOMPLETE'}"
        )
        for failure in capture.failures:
            say(f"    failure: {failure.kind}: {failure.message}")

    def _watch(self, verdict: WatchVerdict, message: Message) -> None:
        """The print watch's verdict on a captured layer (computed after its release)."""
        if not self.ours(message, printer=verdict.printer):
            return
        self.verdicts.append(verdict)
        if verdict.verdict == "ok":
            earlier = ", ".join(str(n) for n in verdict.compared_with)
            seen = f"compared with layer {earlier}" if earlier else "the first capture: nothing to compare with yet"
            if verdict.silhouette:
                seen += f" and with the G-code in {verdict.silhouette} images"
            say(f"  watch, layer {verdict.layer}: ok ({seen}, {verdict.elapsed_ms:.0f} ms)")
            return
        what = "PROBLEM" if verdict.problem else "not sure enough to act"
        say(f"  watch, layer {verdict.layer}: {verdict.verdict.upper()}, confidence {verdict.confidence:.2f}, "
            f"{what} (action: {verdict.action}){f': {verdict.reason}' if verdict.reason else ''}")  # fmt: skip

    def _watched(self) -> str:
        problems = [v for v in self.verdicts if v.problem]
        if not problems:
            return f"{len(self.verdicts)} layers judged, no problem"
        found = "; ".join(f"layer {v.layer}: {v.verdict}, {v.action}" for v in problems)
        return f"{len(self.verdicts)} layers judged, {len(problems)} problem{'s' * (len(problems) > 1)} ({found})"

    def _summary(self, summary: JobSummary, message: Message) -> None:
        if self.ours(message, summary.print_start_time, summary.printer):
            self.summary = summary
            self.done.set()

    def wait_for_page(self, captures_dir: Path, stop: threading.Event, timeout: float = PAGE_WAIT) -> None:
        """After the summary: wait, bounded, until the coordinator has made the job page final."""
        if self.summary is None or self.summary.images == 0:
            return  # nothing to wait for: report() says the job failed
        index = _job_dir(captures_dir, self.summary) / "index.html"
        say(f"# waiting for the coordinator to finish the job page (timelapse videos, at most {timeout:.0f} s)")
        start = time.monotonic()
        last_note = start
        while not stop.is_set():
            if _is_final(index):
                self.page_final = True
                say(f"# job page finished in {time.monotonic() - start:.1f} s")
                return
            now = time.monotonic()
            if now - start >= timeout:
                break
            if now - last_note >= 15:
                last_note = now
                say(f"  still encoding the job page ({now - start:.0f} s)")
            stop.wait(0.5)
        self.page_final = False

    def _resume_hint(self) -> str:
        """How a user goes on after a pause (the print watch's, or anyone's)."""
        broker = self.mqtt.brokers[0]
        topic = self.topics.absolute(contract.RESUME.cmd(self.printer))
        where = f"in OctoPrint ({self.octoprint.url}), " if self.octoprint is not None else ""
        return (f"Resume it {where}or: mosquitto_pub -h {broker.host} -p {broker.port} -t '{topic}' "
                f"""-m '{{"id": "resume-1"}}'; Ctrl-C ends the run""")  # fmt: skip

    def _sub_command(self, port: object) -> str:
        return f"mosquitto_sub -h {self.mqtt.brokers[0].host} -p {port} -v -t '{self.topics.everything}'"

    def report(self, captures_dir: Path, port: str, interrupted: bool = False) -> int:
        """Say how the job went; 1 (failed) when it stored no image, with the reason. Ctrl-C is not a failure."""
        s = self.summary
        if s is None and interrupted:
            say("# stopped before the job ended: no job summary")
            self._where_logs()
            return 0
        if s is None:
            say("# FAILED: no job summary arrived from the coordinator (see the logs below)")
            self._where_logs()
            return 1
        job_dir = _job_dir(captures_dir, s)
        say(
            f"# done: {len(s.layers_captured)} layers captured, {s.images} images, {len(s.failures)} failures, "
            f"{s.total_hold_time:.1f} s held in total"
        )
        say(f"# print watch: {self._watched()}")
        say(f"# images and metadata: {job_dir}")
        say(f"# summary: {job_dir / 'job_summary.json'}")
        say(f"# the traffic, during a run: {self._sub_command(port)}")
        self._where_logs()
        if s.images == 0:
            why = "; ".join(dict.fromkeys(f"{f.kind}: {f.message}" for f in s.failures)) or "no layer was held"
            say(f"# FAILED: the job stored 0 images ({why})")
            return 1
        self._where_page(job_dir / "index.html")
        return 0

    def _where_page(self, index: Path) -> None:
        if self.page_final is False:
            state = "still unfinished (its videos are missing)" if index.exists() else "was not written"
            say(f"# the job page {state}: the coordinator did not finish it in time (see its log)")
            if not index.exists():
                return
        say(f"# job page: {index}")
        say(f"# open it in a browser: {index.as_uri()}")

    def _where_logs(self) -> None:
        say(f"# logs: {Path('.printmesh/logs').resolve()}, OctoPrint's in {self.workdir.resolve() / 'logs'}")


def _job_dir(captures_dir: Path, summary: JobSummary) -> Path:
    return (captures_dir / summary.printer / summary.job).resolve()


def _is_final(index: Path) -> bool:
    try:
        return PAGE_FINAL in index.read_text(errors="replace")
    except OSError:
        return False
