"""Host sampling: the fallback chains and the Pi-specific decoding."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest

from printmesh_host import metrics
from printmesh_host.config import HostConfig, Metrics
from printmesh_host.metrics import Sampler
from printmesh_host.probes import parse_throttled, read_psutil_temperature, read_sysfs_temperature

FAKE_VCGENCMD = str(Path(__file__).parent.parent / "fakes" / "vcgencmd")
Shwtemp = namedtuple("Shwtemp", "label current high critical")


def test_parse_throttled_decodes_now_and_since_boot_bits():
    t = parse_throttled("throttled=0x50005")
    assert t.raw == "0x50005"
    assert t.under_voltage_now and t.throttled_now and not t.freq_capped_now and not t.soft_temp_limit_now
    assert t.under_voltage_occurred and t.throttled_occurred and not t.freq_capped_occurred
    assert not any(v for k, v in parse_throttled("throttled=0x0").model_dump().items() if k != "raw")


def test_psutil_temperature_follows_the_chip_order_and_prefers_package(monkeypatch):
    found = {
        "acpitz": [Shwtemp("", 30.0, None, None)],
        "coretemp": [Shwtemp("Package id 0", 55.0, 80, 100), Shwtemp("Core 0", 50.0, 80, 100)],
    }
    monkeypatch.setattr(metrics.psutil, "sensors_temperatures", lambda: found, raising=False)
    t = read_psutil_temperature(["cpu_thermal", "coretemp", "acpitz"])
    assert t and t.celsius == 55.0 and t.source == "psutil:coretemp"
    t = read_psutil_temperature(["cpu_thermal", "acpitz"])
    assert t and t.celsius == 30.0
    assert read_psutil_temperature(["cpu_thermal"]) is None


def test_sysfs_prefers_cpu_zones(tmp_path):
    for i, (kind, milli) in enumerate([("acpitz", "27800"), ("x86_pkg_temp", "61000"), ("broken", "n/a")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    t = read_sysfs_temperature(tmp_path)
    assert t and t.celsius == 61.0 and "x86_pkg_temp" in t.source
    assert read_sysfs_temperature(tmp_path / "nothing") is None


def _sampler(tmp_path, **kw) -> Sampler:
    kw.setdefault("throttled_path", tmp_path / "no-throttled")
    cfg = HostConfig(temperature_chips=[], thermal_path=tmp_path, vcgencmd="printmesh-test-none", **kw)
    return Sampler(cfg)


def test_vcgencmd_gives_temperature_and_throttling_on_a_pi(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_THROTTLED", "0x1")
    s = _sampler(tmp_path).sample()
    assert s.temperature is None and s.throttling is None and set(s.unavailable) >= {"temperature", "throttling"}
    pi = Sampler(
        HostConfig(temperature_chips=[], thermal_path=tmp_path, vcgencmd=FAKE_VCGENCMD, throttled_path=tmp_path / "x")
    ).sample()
    assert pi.temperature and pi.temperature.celsius == 51.5 and pi.temperature.source == "vcgencmd"
    assert pi.throttling and pi.throttling.under_voltage_now and not pi.throttling.under_voltage_occurred
    assert "temperature" not in pi.unavailable and "throttling" not in pi.unavailable


def test_switched_off_metrics_are_not_sampled(tmp_path):
    s = _sampler(tmp_path, metrics=Metrics(cpu=False, swap=False, throttling=False, temperature=False)).sample()
    assert s.cpu is None and s.swap is None and s.memory is not None
    assert "throttling" not in s.unavailable and "temperature" not in s.unavailable


def test_missing_mounts_are_left_out_and_all_missing_is_unavailable(tmp_path):
    s = _sampler(tmp_path, mounts=["/", "/definitely/not/mounted"]).sample()
    assert s.storage and list(s.storage) == ["/"]
    s = _sampler(tmp_path, mounts=["/definitely/not/mounted"]).sample()
    assert s.storage is None and "no configured mount point" in s.unavailable["storage"]


def test_a_crashing_reader_is_reported_not_raised(tmp_path, monkeypatch):
    def boom():
        raise OSError("kernel says no")

    monkeypatch.setattr(metrics.psutil, "virtual_memory", boom)
    s = _sampler(tmp_path).sample()
    assert s.memory is None and "kernel says no" in s.unavailable["memory"] and s.cpu is not None


@pytest.mark.parametrize("interval", [1.0, 30.0])
def test_entities_follow_the_sample(tmp_path, interval):
    from printmesh_host.entities import host_entities

    cfg = HostConfig(
        temperature_chips=[],
        thermal_path=tmp_path,
        vcgencmd=FAKE_VCGENCMD,
        interval=interval,
        throttled_path=tmp_path / "x",
    )
    state = Sampler(cfg).sample()
    ents = {e.object_id: e for e in host_entities(state, "printmesh/n/host/state", cfg)}
    assert {"cpu_temperature", "under_voltage", "throttled", "disk_root_usage"} <= set(ents)
    assert ents["under_voltage"].platform == "binary_sensor"
    assert all(e.options["expire_after"] > interval * 2 for e in ents.values())


def test_throttling_from_the_firmware_sysfs_file_before_vcgencmd(tmp_path):
    flags = tmp_path / "get_throttled"
    flags.write_text("50000\n")
    s = _sampler(tmp_path, throttled_path=flags).sample()
    assert s.throttling and s.throttling.under_voltage_occurred and not s.throttling.under_voltage_now


def test_temperature_source_is_remembered_and_a_missing_one_searched_rarely(tmp_path, monkeypatch):
    from printmesh_host import probes

    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "type").write_text("cpu-thermal")
    (zone / "temp").write_text("40000")
    calls = {"glob": 0}
    real = probes.read_sysfs_temperature

    def counting(base):
        calls["glob"] += 1
        return real(base)

    monkeypatch.setattr(probes, "read_sysfs_temperature", counting)
    sampler = _sampler(tmp_path)
    for _ in range(5):
        assert sampler.sample().temperature.celsius == 40.0
    (zone / "temp").write_text("41000")
    assert sampler.sample().temperature.celsius == 41.0, "the remembered source is read afresh"
    assert calls["glob"] == 6
    empty = _sampler(tmp_path / "none")
    for _ in range(5):
        assert empty.sample().temperature is None
    assert calls["glob"] == 7, "no source: searched once, then only every RECHECK seconds"
