"""``coordinator.store``: config validation naming the key, the S3 key layout, and the retry
rule (which failures are retried, how often, with what backoff), all without a server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from manual_clock import ManualClock
from minio.error import S3Error

from printmesh_coordinator import store_s3
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_coordinator.store_config import StoreConfig, clean_prefix
from printmesh_coordinator.store_s3 import S3Store, StoreError, content_type, is_metadata, object_key
from printmesh_core.config import ConfigError, load_settings

S3 = {"type": "s3", "endpoint": "http://127.0.0.1:8333", "bucket": "captures", "access_key": "a", "secret_key": "s"}


def load(tmp_path: Path, store: dict[str, Any]) -> CoordinatorSettings:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"coordinator": {"store": store}}))
    return load_settings(CoordinatorSettings, path)


def test_the_default_store_is_the_local_disk(tmp_path: Path) -> None:
    settings = load_settings(CoordinatorSettings, None)
    assert settings.coordinator.store.type == "local"
    assert load(tmp_path, {"type": "local"}).coordinator.store == StoreConfig()


def test_an_s3_store_loads_with_its_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "ak").write_text("AKID\n")
    (tmp_path / "sk").write_text("very-secret\n")
    store = {**S3, "access_key": None, "secret_key": None, "prefix": "/farm1/caps/", "region": "eu-west-1"}
    store |= {"access_key_file": str(tmp_path / "ak"), "secret_key_file": str(tmp_path / "sk")}
    cfg = load(tmp_path, store).coordinator.store
    assert cfg.type == "s3" and cfg.prefix == "farm1/caps" and cfg.region == "eu-west-1"
    assert cfg.access_key is not None and cfg.access_key.get_secret_value() == "AKID"
    assert cfg.secret_key is not None and cfg.secret_key.get_secret_value() == "very-secret"
    assert "very-secret" not in repr(cfg)


@pytest.mark.parametrize(
    ("store", "needle"),
    [
        ({"type": "s3"}, "coordinator.store: type s3 needs endpoint, bucket, access_key, secret_key"),
        ({**S3, "secret_key": None}, "type s3 needs secret_key"),
        ({**S3, "secret_key": "  "}, "coordinator.store: secret_key is empty"),
        ({**S3, "endpoint": "ftp://host"}, "coordinator.store.endpoint: must be http://host[:port]"),
        ({**S3, "endpoint": "http://host/bucket"}, "coordinator.store.endpoint: only scheme, host and port"),
        ({**S3, "endpoint": "http://host:99999"}, "coordinator.store.endpoint: Port out of range"),
        ({**S3, "bucket": "Not_A_Bucket"}, "coordinator.store.bucket: not an S3 bucket name"),
        ({**S3, "bucket": "ab"}, "coordinator.store.bucket: not an S3 bucket name"),
        ({**S3, "prefix": "a/../b"}, "coordinator.store.prefix: '..' is not a plain key segment"),
        ({**S3, "prefix": "a//b"}, "coordinator.store.prefix: '' is not a plain key segment"),
        ({**S3, "region": "EU WEST"}, "coordinator.store.region: not a region name"),
        ({**S3, "retries": 9}, "coordinator.store.retries"),
        ({**S3, "secret": "x"}, "coordinator.store.secret: unknown key"),
        ({**S3, "type": "gcs"}, "coordinator.store.type"),
        ({"type": "local", "bucket": "captures"}, "coordinator.store: bucket: only for type s3"),
        ({"endpoint": "http://h", "prefix": "p"}, "coordinator.store: endpoint, prefix: only for type s3"),
    ],
)
def test_invalid_store_config_stops_start_up_naming_the_key(tmp_path: Path, store: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, store)
    assert needle in str(exc.value)


def test_giving_a_secret_and_its_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "sk").write_text("x")
    with pytest.raises(ConfigError, match=r"coordinator\.store\.secret_key_file: give either secret_key or"):
        load(tmp_path, {**S3, "secret_key_file": str(tmp_path / "sk")})


def test_keys_mirror_the_layout_below_captures_dir() -> None:
    assert object_key("", "octo/job_1/layer_0005_pos_00_x.jpg") == "octo/job_1/layer_0005_pos_00_x.jpg"
    assert object_key("farm1/caps", "octo/job_1/job_summary.json") == "farm1/caps/octo/job_1/job_summary.json"
    assert object_key("p", "octo/job/page/thumbs/a.jpg") == "p/octo/job/page/thumbs/a.jpg"
    for bad in ("../x.jpg", "octo/../../x", "octo//x", "/octo/x", "octo/./x", "octo\\x", "octo/x\x00"):
        with pytest.raises(OSError, match="refusing to write outside the bucket prefix"):
            object_key("farm", bad)
    assert clean_prefix("/a/b/") == "a/b" and clean_prefix("") == "" and clean_prefix("/") == ""


def test_objects_carry_the_type_a_browser_needs() -> None:
    assert content_type("a/layer_0005_pos_00_t.jpg") == "image/jpeg"
    assert content_type("a/index.html") == "text/html"
    assert content_type("a/page/style.css") == "text/css"
    assert content_type("a/page/video/pos_00.webm") == "video/webm"
    assert content_type("a/layer_0005_metadata_t.json") == "application/json"
    assert is_metadata("layer_0005_metadata_20260101_000000.json")
    assert not is_metadata("job_summary.json") and not is_metadata("layer_0005_pos_00_t.jpg")


class Response:
    def __init__(self, status: int) -> None:
        self.status = status


def s3_error(code: str, status: int) -> S3Error:
    return S3Error(Response(status), code, f"{code} message", "key", "req", "host")  # type: ignore[arg-type]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> tuple[S3Store, list[float]]:
    cfg = StoreConfig.model_validate({**S3, "prefix": "farm", "retries": 2})
    s = S3Store(cfg)
    s._client = object()  # never used: each call below raises or returns before touching it
    slept: list[float] = []
    monkeypatch.setattr(store_s3.time, "sleep", slept.append)
    return s, slept


def test_a_refused_key_fails_at_once_with_the_setting_to_check(store: tuple[S3Store, list[float]], caplog) -> None:
    s, slept = store
    calls: list[int] = []

    def refuse(client: Any) -> None:
        calls.append(1)
        raise s3_error("SignatureDoesNotMatch", 403)

    for _ in range(3):
        with pytest.raises(StoreError) as exc:
            s._request("upload of", "farm/x.jpg", refuse)
    assert len(calls) == 3 and not slept, "a wrong key is never retried"
    text = str(exc.value)
    assert text.startswith("s3://captures/farm/ at http://127.0.0.1:8333: upload of farm/x.jpg failed: ")
    assert "SignatureDoesNotMatch" in text and "(check coordinator.store.secret_key)" in text
    logged = [r for r in caplog.records if r.name == "printmesh.coordinator.store" and r.levelname == "ERROR"]
    assert len(logged) == 1, "each cause is logged once"
    assert s.failures == 3


def test_network_errors_and_5xx_are_retried_a_bounded_number_of_times_with_backoff(
    store: tuple[S3Store, list[float]],
) -> None:
    s, slept = store
    calls: list[int] = []

    def down(client: Any) -> None:
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    clock = ManualClock()
    s.clock = clock
    refused = r"failed after 3 tries: ConnectionRefusedError.*is the endpoint reachable"
    with pytest.raises(StoreError, match=refused) as e:
        s._request("upload of", "farm/x.jpg", down)
    assert len(calls) == 3 and slept == [0.25, 0.5]
    assert e.value.transient, "the network: it may pass (the spool keeps the capture)"
    clock.now += store_s3.UNREACHABLE[0]  # past the time requests fail at once (next test)
    answers = iter([s3_error("ServiceUnavailable", 503), s3_error("InternalError", 500), "ok"])

    def flaky(client: Any) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    slept.clear()
    assert s._request("upload of", "farm/x.jpg", flaky) == "ok" and slept == [0.25, 0.5]


def test_an_unreachable_endpoint_is_not_asked_again_for_a_while_so_the_upload_queue_drains(
    store: tuple[S3Store, list[float]],
) -> None:
    # each request would hold the one upload thread timeout x (retries + 1) s, with every image queued behind it
    s, _slept = store
    clock = ManualClock()
    s.clock = clock
    calls: list[str] = []

    def down(client: Any) -> None:
        calls.append("tried")
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(StoreError, match=r"after 3 tries.*requests fail at once for 5 s"):
        s._request("upload of", "farm/a.jpg", down)
    for _ in range(50):  # the queue behind it: failed at once, none sent
        with pytest.raises(StoreError, match=r"farm/b.jpg not tried: unreachable \(ConnectionRefusedError") as e:
            s._request("upload of", "farm/b.jpg", down)
        assert e.value.transient
    assert len(calls) == 3 and s.failures == 51
    clock.now += 5.0  # then one request tries again; still down: twice as long, up to a minute
    spans = []
    for _ in range(6):
        with pytest.raises(StoreError) as exc:
            s._request("upload of", "farm/c.jpg", down)
        spans.append(int(str(exc.value).rsplit("for ", 1)[1].split(" s")[0]))
        clock.now += spans[-1]
    assert spans == [10, 20, 40, 60, 60, 60] and len(calls) == 3 + 6 * 3
    assert s._request("upload of", "farm/d.jpg", lambda client: "etag") == "etag", "back: requests go through"
    assert s._request("upload of", "farm/e.jpg", lambda client: "etag2") == "etag2"
    refused = s3_error("AccessDenied", 403)  # a refusal is an answer: the endpoint is there

    def deny(client: Any) -> None:
        raise refused

    with pytest.raises(StoreError, match="AccessDenied") as e:
        s._request("upload of", "farm/f.jpg", deny)
    assert not e.value.transient, "a refusal does not pass by itself: never spooled"
    assert s._request("upload of", "farm/g.jpg", lambda client: "etag3") == "etag3"


def test_with_an_s3_store_the_loop_only_queues_and_outcomes_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage.write returns at once; the upload thread writes in queue order (images, then the
    metadata) and feeds each outcome back, a failure as WriteFailed with the store's message."""
    from printmesh_coordinator.config import CoordinatorSection
    from printmesh_coordinator.messages import Input, WriteFailed, Written
    from printmesh_coordinator.storage import Storage

    gate = threading.Event()
    order: list[str] = []

    def write(self: S3Store, relative: str, data: bytes) -> str:
        gate.wait(5)
        if relative.endswith("bad.jpg"):
            raise StoreError("s3://captures/ at http://127.0.0.1:8333: upload of bad.jpg failed: AccessDenied: no")
        order.append(relative)
        return relative

    monkeypatch.setattr(S3Store, "write", write)
    monkeypatch.setattr(S3Store, "client", lambda self: None)
    section = CoordinatorSection(store=StoreConfig.model_validate(S3), pages=False)
    outcomes: list[tuple[str, Input]] = []
    storage = Storage(section, lambda printer, message: outcomes.append((printer, message)))
    try:
        names = [f"p/j/layer_0005_pos_{i:02d}_t.jpg" for i in range(9)] + [
            "p/j/bad.jpg",
            "p/j/layer_0005_metadata_t.json",
        ]
        for name in names:
            assert storage.write("p", name, b"x") is None, "nothing is written on the loop"
        assert not order and not outcomes
        gate.set()
        assert storage.idle(5)
    finally:
        storage.close(1, 1)
    assert order == [n for n in names if "bad" not in n]
    assert [m.path for _, m in outcomes] == names and all(p == "p" for p, _ in outcomes)
    failed = [m for _, m in outcomes if isinstance(m, WriteFailed)]
    assert len(failed) == 1 and "AccessDenied" in failed[0].error
    assert sum(isinstance(m, Written) for _, m in outcomes) == 10
