"""Print watch, the coordinator's wiring (issue 15): config, the rules, the judging thread, the
loop's handling of a verdict (sidecar, topic, pause), and the job page. The detector itself is
tested by its own tests; here a tiny detector module stands in at the worker's import boundary."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from coordinator_support import printer_config
from watch_support import metadata, write_layer

from printmesh_coordinator.config import CoordinatorSettings, WatchConfig
from printmesh_coordinator.job_folder import read_job
from printmesh_coordinator.messages import Answer
from printmesh_coordinator.page_html import render
from printmesh_coordinator.storage import Storage
from printmesh_coordinator.store import Store
from printmesh_coordinator.watch import GrowthHint, Region, Verdict
from printmesh_coordinator.watch_rules import Growth, judged, published, sidecar_path
from printmesh_coordinator.watch_shell import WatchShell
from printmesh_coordinator.watch_worker import Judged, Layer, WatchWorker
from printmesh_core.config import ConfigError, load_settings
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.watch import WatchVerdict
from printmesh_core.topics import Topics


# ------------------------------------------------------------------ config
def _load(tmp_path: Path, watch: object) -> CoordinatorSettings:
    printer = {"node": "octo", "plan": {"every": 5}, "cameras": [{"node": "cam", "camera": "bed"}], "watch": watch}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"coordinator": {"printers": [printer]}}))
    return load_settings(CoordinatorSettings, path)


def test_watch_defaults_are_on_notify_and_a_confidence_floor(tmp_path: Path) -> None:
    watch = printer_config().watch
    assert watch.enabled and watch.on_problem == "notify" and 0 < watch.min_confidence < 1
    assert (
        _load(tmp_path, {"on_problem": "pause", "min_confidence": 0.8}).coordinator.printers[0].watch.on_problem
        == "pause"
    )


@pytest.mark.parametrize(
    ("watch", "key"),
    [
        ({"on_problem": "stop"}, r"coordinator\.printers\.0\.watch\.on_problem"),
        ({"min_confidence": 1.5}, r"coordinator\.printers\.0\.watch\.min_confidence"),
        ({"enabled": "maybe"}, r"coordinator\.printers\.0\.watch\.enabled"),
        ({"sensitivity": 3}, r"coordinator\.printers\.0\.watch\.sensitivity: unknown key"),
    ],
)
def test_an_invalid_watch_setting_stops_start_up_naming_the_key(tmp_path: Path, watch: object, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _load(tmp_path, watch)


def test_the_helpers_are_processes_unless_set_to_threads_and_anything_else_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    for value, expected in (("process", "process"), ("thread", "thread")):
        path.write_text(yaml.safe_dump({"coordinator": {"helpers": value}}))
        assert load_settings(CoordinatorSettings, path).coordinator.helpers == expected
    assert CoordinatorSettings().coordinator.helpers == "process"
    path.write_text(yaml.safe_dump({"coordinator": {"helpers": "fork"}}))
    with pytest.raises(ConfigError, match=r"coordinator\.helpers"):
        load_settings(CoordinatorSettings, path)


# ------------------------------------------------------------------ rules
@pytest.mark.parametrize(
    ("on_problem", "kind", "confidence", "expected"),
    [
        ("pause", "spaghetti", 0.9, (True, "pause")),
        ("pause", "spaghetti", 0.5, (False, "none")),  # below min_confidence: only the published verdict
        ("pause", "ok", 0.99, (False, "none")),
        ("notify", "shift", 0.6, (True, "notify")),  # at the floor counts
        ("none", "detach", 1.0, (False, "none")),
    ],
)
def test_a_problem_is_not_ok_at_min_confidence(on_problem: Any, kind: Any, confidence: float, expected: Any) -> None:
    assert judged(WatchConfig(on_problem=on_problem, min_confidence=0.6), kind, confidence) == expected


def test_the_sidecar_sits_beside_the_metadata_and_growth_is_told_from_the_last_capture() -> None:
    assert (
        sidecar_path("p/job/layer_0015_metadata_20260101_000000.json") == "p/job/layer_0015_watch_20260101_000000.json"
    )
    g = Growth(layer=15, z=3.2, previous_layer=10, previous_z=2.2)
    assert g.layers == 5 and g.layer_height == 0.2
    first = Growth(layer=5, z=1.0, previous_layer=None, previous_z=None)
    assert first.layers == 5 and first.layer_height is None


def DetectorVerdict(layer: int, verdict: str, confidence: float, score: float, **more: Any) -> Verdict:
    """The detector's own verdict, as its ``Watcher.judge`` returns it."""
    return Verdict(layer=layer, verdict=verdict, confidence=confidence, score=score, elapsed_ms=12.5, **more)  # type: ignore[arg-type]


def test_the_published_verdict_names_flagged_images_by_file_and_says_the_action() -> None:
    md = metadata()
    names = {("bed", 0): "layer_0015_pos_00_20260101_000000.jpg", ("bed", 1): "layer_0015_pos_01_20260101_000000.jpg"}
    raw = DetectorVerdict(15, "spaghetti", 0.93, 4.2, region=[Region(camera="bed", point=1, x=3, y=4, w=50, h=60)],
                          flagged=[names[("bed", 1)]], compared_with=10, reason="strands")  # fmt: skip
    out = published(WatchConfig(on_problem="pause"), md, raw, names)
    assert (out.verdict, out.problem, out.action, out.layer, out.job) == ("spaghetti", True, "pause", 15, "job1")
    assert out.flagged == ["layer_0015_pos_01_20260101_000000.jpg"] and out.compared_with == [10]
    assert out.regions[0].image == out.flagged[0] and (out.regions[0].x, out.regions[0].height) == (3, 60)
    assert out.reason == "strands" and out.elapsed_ms == 12.5 and out.agreement is None
    assert published(WatchConfig(), md, DetectorVerdict(15, "ok", 1.0, 0.1, agreement=0.42), names).agreement == 0.42
    low = published(WatchConfig(on_problem="pause", min_confidence=0.95), md, raw, names)
    assert (low.verdict, low.problem, low.action) == ("spaghetti", False, "none"), "below min_confidence: notify only"


# ------------------------------------------------------------------ the thread
def fake_detector(name: str, verdicts: dict[int, DetectorVerdict], gate: threading.Event | None = None) -> str:
    """A detector module at the worker's import boundary: answers the verdict set for each layer."""
    module = types.ModuleType(name)
    seen: list[tuple[int, dict[Any, bytes], Any, Any]] = []

    class Watcher:
        def judge(self, layer: int, images: dict[Any, bytes], growth: Any, names: Any = None) -> Verdict:
            if gate is not None:
                gate.wait(5)
            seen.append((layer, images, growth, names))
            return verdicts[layer]

    module.Watcher = Watcher  # type: ignore[attr-defined]
    module.GrowthHint = GrowthHint  # type: ignore[attr-defined]
    module.seen = seen  # type: ignore[attr-defined]
    sys.modules[name] = module
    return name


def local_storage(root: Path) -> Storage:
    """The coordinator's storage on a local folder (what a default config builds)."""
    section = SimpleNamespace(
        store=SimpleNamespace(type="local"), captures_dir=root, fsync=False, pages=False, helpers="thread"
    )
    return Storage(section, lambda printer, message: None)  # type: ignore[arg-type]


def test_the_worker_reads_the_layer_from_disk_and_a_full_backlog_drops_the_oldest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    gate = threading.Event()
    layers = {n: metadata(layer=n) for n in (5, 10, 15, 20)}
    for md in layers.values():
        write_layer(store, md)
    name = fake_detector("watch_fake_backlog", {n: DetectorVerdict(n, "ok", 0.9, 0.1) for n in layers}, gate)
    out: list[Judged] = []
    worker = WatchWorker(store.read, out.append, backlog=2, detector=name, process=False)
    try:
        for n, md in layers.items():
            worker.submit(Layer("octo", WatchConfig(), md, Growth(n, n / 5, n - 5 or None, (n - 5) / 5 or None)))
            deadline = time.monotonic() + 10
            while n == 5 and not worker._busy and time.monotonic() < deadline:  # layer 5 taken, held at the gate
                time.sleep(0.001)
        gate.set()
        assert worker.idle(10)
    finally:
        worker.close(5)
    judged_layers = [j.verdict.layer for j in out]
    assert judged_layers[-2:] == [15, 20] and worker.dropped >= 1 and 10 not in judged_layers
    seen = sys.modules[name].seen  # type: ignore[attr-defined]
    layer, images, growth, names = seen[-1]
    assert layer == 20
    assert set(images) == {("bed", 0), ("bed", 1)} and images[("bed", 1)].endswith(b"\xff\xd9")
    assert growth == GrowthHint(z=4.0, previous_z=3.0), "the part's top now and at the previous capture"
    assert names[("bed", 1)] == "layer_0020_pos_01_20260101_000000.jpg"


def test_a_job_it_has_no_memory_of_is_resumed_from_the_stores_last_earlier_layer(tmp_path: Path) -> None:
    # the coordinator restarted mid-job (or took the printer over): layer 15 is compared with layer 10 from the
    # store, not with nothing; the job's first layer and a store that cannot be listed change nothing
    store = Store(tmp_path)
    for n in (5, 10, 15):
        write_layer(store, metadata(layer=n).model_copy(update={"z_height": n / 5}))
    write_layer(store, metadata(layer=12).model_copy(update={"images": [], "missed": "holder_unreachable"}))
    verdicts = {n: DetectorVerdict(n, "ok", 0.9, 0.1) for n in (5, 10, 15)}
    runs = {}
    for label, history in (("resumed", store.layers), ("without", None), ("broken", broken_history)):
        name = fake_detector(f"watch_fake_resume_{label}", verdicts)
        out: list[Judged] = []
        worker = WatchWorker(store.read, out.append, detector=name, history=history, process=False)
        try:
            md = store.layers("octo", "job1")[-1]
            assert md.layer == 15
            worker.submit(Layer("octo", WatchConfig(), md, Growth(15, 3.0, None, None)))  # the shell forgot too
            assert worker.idle(10) and [j.verdict.layer for j in out] == [15]
        finally:
            worker.close(5)
        runs[label] = (sys.modules[name].seen, worker.resumed)  # type: ignore[attr-defined]
    seen, resumed = runs["resumed"]
    assert [s[0] for s in seen] == [10, 15] and resumed == 1, "the last earlier judgeable layer first"
    assert set(seen[0][1]) == {("bed", 0), ("bed", 1)} and seen[0][1][("bed", 0)].endswith(b"\xff\xd9")
    assert seen[1][2] == GrowthHint(z=3.0, previous_z=2.0), "and the growth hint from its z"
    for label in ("without", "broken"):
        seen, resumed = runs[label]
        assert [s[0] for s in seen] == [15] and resumed == 0 and seen[0][2] == GrowthHint(z=3.0), label
    name = fake_detector("watch_fake_resume_first", verdicts)
    worker = WatchWorker(store.read, lambda j: None, detector=name, history=store.layers, process=False)
    try:
        worker.submit(Layer("octo", WatchConfig(), metadata(layer=5), Growth(5, 1.0, None, None)))
        assert worker.idle(10) and worker.resumed == 0
    finally:
        worker.close(5)
    assert [s[0] for s in sys.modules[name].seen] == [5], "nothing before a job's first layer"  # type: ignore[attr-defined]


def test_every_printer_printing_at_once_keeps_its_jobs_history_in_memory(tmp_path: Path) -> None:
    # 200 printers and 8 remembered jobs: every layer would evict another printer's history and start
    # from the store's copy of its last layer instead (read back and judged a second time)
    store = Store(tmp_path)
    printers = [f"p{i}" for i in range(12)]
    for printer in printers:
        for n in (5, 10):
            write_layer(store, metadata(folder=f"{printer}/job1", layer=n).model_copy(update={"printer": printer}))
    shell = WatchShell([printer_config(node=p) for p in printers], local_storage(tmp_path), FakeLink(),  # type: ignore[arg-type]
                       Topics("printmesh", "coord").component("coordinator"), lambda t, p: None,
                       lambda p, j: None, lambda p, j: None, "s1", process=False)  # fmt: skip
    assert shell.worker is not None and shell.worker._kept == 24, "two jobs per watched printer"
    shell.close(5)
    for kept, resumed in ((24, 0), (8, 12)):
        name = fake_detector(f"watch_fake_kept_{kept}", {n: DetectorVerdict(n, "ok", 0.9, 0.1) for n in (5, 10)})
        worker = WatchWorker(store.read, lambda j: None, detector=name, history=store.layers, kept=kept, process=False)
        try:
            for n in (5, 10):  # every printer's layer 5, then every printer's layer 10
                for printer in printers:
                    md = metadata(folder=f"{printer}/job1", layer=n).model_copy(update={"printer": printer})
                    worker.submit(Layer(printer, WatchConfig(), md, Growth(n, 1.0, None, None)))
                    assert worker.idle(10)
        finally:
            worker.close(5)
        assert worker.resumed == resumed, (kept, worker.resumed)


def broken_history(printer: str, job: str) -> list[LayerCapture]:
    raise OSError("the bucket cannot be listed")


@dataclass
class FakeLink:  # the coordinator's Link as the shell uses it: one request out per pause
    sent: list[tuple[str, str, Any]] = field(default_factory=list)
    outlines: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.requests = self

    def printer(self, node: str) -> str:
        return node

    def send(self, target: str, command: str, body: Any, owner: str) -> str:
        self.sent.append((target, command, body))
        return body.id


def test_a_verdict_is_written_beside_the_metadata_published_and_paused_after_the_release(tmp_path: Path) -> None:
    store = Store(tmp_path)
    md = metadata()
    write_layer(store, md)
    flagged = ["layer_0015_pos_00_20260101_000000.jpg"]
    name = fake_detector("watch_fake_pause", {15: DetectorVerdict(15, "spaghetti", 0.95, 3.0, flagged=flagged)})
    published_: list[tuple[str, Any]] = []
    pages: list[tuple[str, str]] = []
    inbox: list[Judged] = []
    link = FakeLink()
    printers = [printer_config(watch={"on_problem": "pause"})]
    me = Topics("printmesh", "coord").component("coordinator")
    storage = local_storage(tmp_path)
    shell = WatchShell(printers, storage, link, me, lambda t, p: published_.append((t, p)),  # type: ignore[arg-type]
                       lambda p, j: pages.append((p, j)), lambda p, j: inbox.append(j), "s1",
                       process=False)  # fmt: skip
    shell.worker.close(1)  # type: ignore[union-attr]
    shell.worker = WatchWorker(store.read, inbox.append, detector=name, process=False)
    try:
        shell.layer_done("octo", md)
        assert shell.worker.idle(10) and len(inbox) == 1
        assert shell.consume(inbox[0]) and not shell.consume(Answer("other", True))
        topic, verdict = published_[0]
        assert topic == "coord/coordinator/octo/watch" and verdict.problem and verdict.action == "pause"
        side = store.path(sidecar_path(md.metadata_path or ""))
        assert WatchVerdict.model_validate_json(side.read_bytes()) == verdict and pages == [("octo", "job1")]
        ((target, command, request),) = link.sent
        assert (target, command) == ("octo", "pause")
        # a later hold was running when the pause arrived: sent again after that hold's release
        assert shell.consume(Answer(request.id, False, None, "held", "held by printmesh"))
        shell.layer_done("octo", metadata(layer=20).model_copy(update={"images": []}))
        assert [c for _, c, _ in link.sent] == ["pause", "pause"]
        assert shell.consume(Answer(link.sent[-1][2].id, True, {"requested": "pause"})) and not shell.pauses
        # resumed by the user: a later layer still showing it is a problem, notified, not paused again
        again = verdict.model_copy(update={"layer": 20, "metadata_path": None})
        assert shell.consume(Judged("octo", again))
        assert published_[-1][1].problem and published_[-1][1].action == "notify" and len(link.sent) == 2
        other_job = again.model_copy(update={"job": "job2"})
        assert shell.consume(Judged("octo", other_job)) and published_[-1][1].action == "pause" and len(link.sent) == 3
    finally:
        shell.close(5)


def test_the_job_page_plots_scores_and_outlines_the_flagged_images(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for n, kind, problem in ((5, "ok", False), (10, "ok", False), (15, "spaghetti", True)):
        md = metadata(layer=n)
        write_layer(store, md)
        flagged = [Path(md.images[1].path).name] if problem else []
        verdict = WatchVerdict(printer="octo", job="job1", layer=n, verdict=kind, confidence=0.9, score=n / 5,
                               problem=problem, action="pause" if problem else "none", flagged=flagged,
                               elapsed_ms=10, metadata_path=md.metadata_path)  # fmt: skip
        store.write(sidecar_path(md.metadata_path or ""), verdict.model_dump_json().encode())
    store.write("octo/job1/layer_0020_metadata_20260101_000000.json", metadata(layer=20).model_dump_json().encode())
    store.write("octo/job1/layer_0020_watch_20260101_000000.json", b"{not json")  # unreadable: no verdict, no crash
    newer = json.loads(store.root.joinpath(sidecar_path(metadata(layer=10).metadata_path or "")).read_text())
    newer["future"] = {"field": 1}  # a newer coordinator sharing the folder: its sidecar is still read
    store.write(sidecar_path(metadata(layer=10).metadata_path or ""), json.dumps(newer).encode())
    job = read_job(tmp_path / "octo" / "job1")
    assert [r.watch.verdict if r.watch else None for r in job.rows] == ["ok", "ok", "spaghetti", None]
    html = render(job, {}, [], False, 1000.0)
    assert 'class="plot plot-watch"' in html and "Problem at layer 15: spaghetti" in html
    assert html.count('<td class="flagged problem">') == 1 and 'data-verdict="spaghetti"' in html
    assert 'href="layer_0015_pos_01_20260101_000000.jpg"' in html.split('<td class="flagged problem">')[1][:200]


@pytest.mark.parametrize(("overlaps", "warned"), [((0.18, 0.2, 0.7), True), ((0.8, 0.2, 0.7), False), ((None,), False)])
def test_the_job_page_says_when_the_silhouette_lies_beside_the_part(
    tmp_path: Path, overlaps: tuple, warned: bool
) -> None:
    """A camera geometry measured wrong shows as a poor overlap of part and silhouette in most layers."""
    store = Store(tmp_path)
    for n, agreement in zip((5, 10, 15), overlaps, strict=False):
        md = metadata(layer=n)
        write_layer(store, md)
        verdict = WatchVerdict(printer="octo", job="job1", layer=n, verdict="ok", confidence=0.9, score=0.1,
                               problem=False, action="none", elapsed_ms=10, metadata_path=md.metadata_path,
                               agreement=agreement)  # fmt: skip
        store.write(sidecar_path(md.metadata_path or ""), verdict.model_dump_json().encode())
    html = render(read_job(tmp_path / "octo" / "job1"), {}, [], False, 1000.0)
    assert ("watch-geometry" in html and "--calibrate" in html and "median 0.20" in html) == warned
