"""Sensor agent, in process: physics, filters, config rules, drivers, runner timing, HA entities.

The end-to-end behaviour against a real broker is in test_sensors_agent.py.
"""

from __future__ import annotations

import errno
import importlib
import json
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from printmesh_core.config import ConfigError, load_settings
from printmesh_core.models.sensors import SensorHealth, SensorReading
from printmesh_sensors.config import SensorsSettings
from printmesh_sensors.drivers.base import Driver, RawReading, ReadError, classify
from printmesh_sensors.drivers.dht import DhtDriver, DhtSensor, classify_dht_error, normalise_pin
from printmesh_sensors.drivers.linux_iio import IioDriver, IioSensor
from printmesh_sensors.drivers.simulated import LIBRARY_MESSAGES, SimulatedDriver, SimulatedSensor
from printmesh_sensors.entities import SensorTopics, label, object_ids, sensor_entities
from printmesh_sensors.filters import Pipeline, Unconfirmed
from printmesh_sensors.physics import dew_point, to_unit
from printmesh_sensors.runner import SensorRunner

FAKES = Path(__file__).parent.parent / "fakes" / "sensors"


def sim(**kw) -> SimulatedSensor:
    return SimulatedSensor(**{"name": "s", "driver": "simulated", **kw})


def settings(tmp_path: Path, sensors: list[dict], **section) -> SensorsSettings:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"sensors": {"sensors": sensors, **section}}))
    return load_settings(SensorsSettings, path)


# ------------------------------------------------------------------ physics
def test_dew_point_magnus_against_table_values():
    dp = dew_point(20.0, 50.0)
    assert dp is not None and round(dp, 1) == 9.3
    dp = dew_point(30.0, 80.0)
    assert dp is not None and round(dp, 1) == 26.2
    dp = dew_point(-10.0, 70.0)
    assert dp is not None and round(dp, 1) == -14.4
    dp = dew_point(22.0, 100.0)
    assert dp is not None and abs(dp - 22.0) < 1e-9
    assert dew_point(22.0, 0.0) is None, "no water vapour: no dew point, not -273"


def test_fahrenheit_conversion():
    assert to_unit(0.0, "F") == 32.0 and to_unit(100.0, "F") == 212.0 and to_unit(-40.0, "F") == -40.0
    assert to_unit(21.5, "C") == 21.5


# ------------------------------------------------------------------ filters
def pipe(**filters) -> Pipeline:
    return Pipeline(sim(filters=filters))


def test_range_is_the_models_datasheet_range_or_the_override():
    p = Pipeline(sim(model="DHT11"))
    for bad in (RawReading(51.0, 40.0), RawReading(-1.0, 40.0), RawReading(20.0, 19.0), RawReading(20.0, 91.0)):
        with pytest.raises(ReadError) as exc:
            p.check_range(bad)
        assert exc.value.kind == "implausible" and "DHT11 range" in exc.value.message
    p.check_range(RawReading(50.0, 90.0))
    Pipeline(sim(model="DHT22")).check_range(RawReading(-40.0, 0.0))
    wide = Pipeline(sim(model="DHT11", filters={"limits": {"temperature": [0, 60]}}))
    wide.check_range(RawReading(55.0, 40.0))


def test_first_reading_needs_a_second_that_agrees_so_a_spike_cannot_become_the_reference():
    p = pipe()
    with pytest.raises(Unconfirmed):
        p.accept(RawReading(47.6, 45.0))  # a spike as the very first frame
    with pytest.raises(Unconfirmed):
        p.accept(RawReading(22.0, 45.0))  # disagrees: the spike is dropped, not published
    value, samples = p.accept(RawReading(22.1, 45.2))
    assert value == RawReading(22.1, 45.2) and samples == 1


def test_jump_is_rejected_but_a_real_change_is_confirmed():
    p = pipe(jump={"temperature": 5, "humidity": 10, "confirm": 3})
    p.reference = RawReading(22.0, 45.0)
    with pytest.raises(ReadError, match=r"temperature jumped 25\.6"):
        p.accept(RawReading(47.6, 45.0))
    assert p.accept(RawReading(22.3, 45.0))[0].temperature == 22.3, "a lone spike does not move the reference"
    with pytest.raises(ReadError, match="humidity jumped"):
        p.accept(RawReading(22.3, 70.0))
    for t in (30.0, 30.5):  # the heater came on: the new level is rejected twice...
        with pytest.raises(ReadError, match=r"jumped"):
            p.accept(RawReading(t, 45.0))
    assert p.accept(RawReading(31.0, 45.0))[0].temperature == 31.0  # ...and accepted at the third agreeing one
    assert p.accept(RawReading(31.2, 45.0))[0].temperature == 31.2


def test_jump_filter_off_accepts_the_first_reading():
    p = pipe(jump={"temperature": None, "humidity": None})
    assert p.accept(RawReading(47.6, 45.0))[0].temperature == 47.6


def test_median_over_the_last_n_accepted_readings():
    p = pipe(median=3, jump={"temperature": None, "humidity": None})
    assert p.accept(RawReading(20.0, 40.0)) == (RawReading(20.0, 40.0), 1)
    assert p.accept(RawReading(22.0, 44.0)) == (RawReading(21.0, 42.0), 2)
    assert p.accept(RawReading(21.0, 50.0)) == (RawReading(21.0, 44.0), 3)
    assert p.accept(RawReading(40.0, 41.0)) == (RawReading(22.0, 44.0), 3)
    p.reset()
    assert p.accept(RawReading(10.0, 30.0)) == (RawReading(10.0, 30.0), 1)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("sensor", "key", "text"),
    [
        ({"name": "a", "driver": "dht99"}, "sensors.sensors.0.driver", "unknown driver"),
        ({"name": "a"}, "sensors.sensors.0.driver", "needs a driver"),
        ({"name": "a", "driver": "dht", "model": "DHT22", "pin": "D28"}, "sensors.sensors.0.dht.pin", "invalid pin"),
        ({"name": "a", "driver": "dht", "model": "DHT22", "pin": "P4"}, "sensors.sensors.0.dht.pin", "invalid pin"),
        ({"name": "a", "driver": "dht", "model": "DHT23", "pin": 4}, "sensors.sensors.0.dht.model", "DHT11"),
        ({"name": "a", "driver": "dht", "pin": 4}, "sensors.sensors.0.dht.model", "Field required"),
        ({"name": "a", "driver": "dht", "model": "DHT22", "pin": 4, "interval": 1}, "dht.interval", "2"),
        ({"name": "a", "driver": "simulated", "pin": 4}, "sensors.sensors.0.simulated.pin", "unknown key"),
        ({"name": "a", "driver": "linux-iio", "model": "DHT11", "device": "../x"}, "linux-iio.device", "invalid"),
        ({"name": "a/b", "driver": "simulated"}, "sensors.sensors.0.simulated.name", "invalid sensor name"),
        ({"name": "cmd", "driver": "simulated"}, "sensors.sensors.0.simulated.name", "reserved"),
        ({"name": "a", "driver": "simulated", "failure_rate": 1.5}, "simulated.failure_rate", "less than"),
        ({"name": "a", "driver": "simulated", "interval": 10, "unavailable_after": 5}, "0.simulated", ">= interval"),
        ({"name": "a", "driver": "simulated", "filters": {"limits": {"humidity": [50, 10]}}}, "limits.humidity", "<"),
    ],
)
def test_bad_sensor_config_names_the_key(tmp_path, sensor, key, text):
    with pytest.raises(ConfigError) as exc:
        settings(tmp_path, [sensor])
    assert key in str(exc.value) and text in str(exc.value), str(exc.value)


def test_duplicate_names_and_shared_pins_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="duplicate sensor name 'Room'"):
        settings(tmp_path, [{"name": "room", "driver": "simulated"}, {"name": "Room", "driver": "simulated"}])
    dht = {"driver": "dht", "model": "DHT22"}
    with pytest.raises(ConfigError, match="sensors 'a' and 'b' use the same gpio device D4"):
        settings(tmp_path, [{"name": "a", "pin": "GPIO4", **dht}, {"name": "b", "pin": 4, **dht}])
    with pytest.raises(ConfigError, match="temperature_unit"):
        settings(tmp_path, [], temperature_unit="kelvin")


def test_config_normalises_pins_models_units_and_defaults(tmp_path):
    s = settings(
        tmp_path,
        [
            {"name": "a", "driver": "dht", "model": "am2302", "pin": "gpio17"},
            {"name": "b", "driver": "linux-iio", "model": "dht11", "location": "room"},
            {"name": "c", "driver": "simulated", "interval": 20},
        ],
        temperature_unit="fahrenheit",
    )
    a, b, c = s.sensors.sensors
    assert isinstance(a, DhtSensor) and a.pin == "D17" and a.model == "AM2302" and a.location == "a"
    assert isinstance(b, IioSensor) and b.model == "DHT11" and b.location == "room"
    assert a.grace == 30 and c.grace == 60, "default unavailable_after: max(3 x interval, 30)"
    assert s.sensors.temperature_unit == "F"
    assert [normalise_pin(p) for p in (0, "27", "BCM5", "d6")] == ["D0", "D27", "D5", "D6"]


# ------------------------------------------------------------------ drivers
def test_dht_library_messages_map_to_error_kinds():
    kinds = {m: classify_dht_error(RuntimeError(m)).kind for m in LIBRARY_MESSAGES.values()}
    assert kinds == {
        "Checksum did not validate. Try again.": "checksum",
        "A full buffer was not returned. Try again.": "timeout",
        "DHT sensor not found, check wiring": "not_found",
        "Received unplausible data. Try again.": "implausible",
    }
    assert classify_dht_error(RuntimeError("Timed out waiting for PulseIn message")).kind == "timeout"
    assert classify_dht_error(RuntimeError("something new")).kind == "other"
    assert classify(OSError(errno.EIO, "Input/output error")).kind == "io"
    assert classify(OSError(errno.ETIMEDOUT, "Connection timed out")).kind == "timeout"
    assert classify(ZeroDivisionError("division by zero")).message == "ZeroDivisionError: division by zero"


@pytest.fixture
def dht_fakes(monkeypatch, tmp_path):
    """The fake board/adafruit_dht on sys.path, a script file and an event log."""
    monkeypatch.syspath_prepend(str(FAKES))
    for mod in ("board", "adafruit_dht"):
        sys.modules.pop(mod, None)
    script, events = tmp_path / "script.json", tmp_path / "events.jsonl"
    monkeypatch.setenv("FAKE_DHT_SCRIPT", str(script))
    monkeypatch.setenv("FAKE_DHT_LOG", str(events))

    def write(steps: list[dict]) -> None:
        script.write_text(json.dumps({"steps": steps}))

    yield write, events
    for mod in ("board", "adafruit_dht"):
        sys.modules.pop(mod, None)


def test_dht_driver_builds_the_right_class_on_the_pin_and_releases_it(dht_fakes):
    write, events = dht_fakes
    write([{"t": 21.5, "h": 40.0}, {"error": "Checksum did not validate. Try again."}])
    driver = DhtDriver("AM2302", "D4", use_pulseio=False)
    assert driver.read() == RawReading(21.5, 40.0)
    driver._device._last_called -= 3  # let the 2 s window pass without sleeping
    with pytest.raises(ReadError) as exc:
        driver.read()
    assert exc.value.kind == "checksum" and exc.value.message == "Checksum did not validate. Try again."
    driver.close()
    log = [json.loads(line) for line in events.read_text().splitlines()]
    assert log[0] == {**log[0], "event": "init", "cls": "DHT22", "pin": "board.D4", "use_pulseio": False}
    assert [e["event"] for e in log] == ["init", "measure", "measure", "exit"], "one measurement per read"


def test_dht_driver_without_the_library_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "adafruit_dht", None)  # import fails as if not installed
    monkeypatch.syspath_prepend(str(FAKES))
    with pytest.raises(ReadError) as exc:
        DhtDriver("DHT22", "D4", use_pulseio=False).read()
    assert exc.value.kind == "other" and "pip install 'printmesh-sensors[dht]'" in exc.value.message
    sys.modules.pop("board", None)


def test_dht_driver_names_the_undeclared_gpio_library_blinka_needs(monkeypatch, dht_fakes):
    monkeypatch.setitem(sys.modules, "board", None)
    original = importlib.import_module

    def import_module(name, package=None):
        if name == "board":  # what Blinka's board module does on a Pi without libgpiod's bindings
            raise ModuleNotFoundError("No module named 'gpiod'", name="gpiod")
        return original(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ReadError) as exc:
        DhtDriver("DHT22", "D4", use_pulseio=False).read()
    assert exc.value.kind == "other" and exc.value.message.endswith("install it with pip install gpiod")


def test_dht_driver_on_an_unknown_board(monkeypatch, dht_fakes):
    monkeypatch.setenv("FAKE_BOARD_ERROR", "Board not supported Generic x86 PC")
    with pytest.raises(ReadError, match="Board not supported"):
        DhtDriver("DHT22", "D4", use_pulseio=False).read()


def iio_tree(base: Path, name: str = "dht11@4", temp: str = "23500", hum: str = "41000", n: int = 0) -> Path:
    dev = base / f"iio:device{n}"
    dev.mkdir(parents=True, exist_ok=True)
    (dev / "name").write_text(name + "\n")
    (dev / "in_temp_input").write_text(temp + "\n")
    (dev / "in_humidityrelative_input").write_text(hum + "\n")
    return dev


def test_iio_driver_reads_milli_units_and_finds_the_device(tmp_path):
    iio_tree(tmp_path, name="some_adc", n=0)
    iio_tree(tmp_path, temp="-1200", hum="99900", n=1)
    assert IioDriver(tmp_path, None).read() == RawReading(-1.2, 99.9)
    assert IioDriver(tmp_path, "iio:device0").read() == RawReading(23.5, 41.0)
    assert IioDriver(tmp_path, "dht11@4").read() == RawReading(-1.2, 99.9)
    with pytest.raises(ReadError, match="no IIO device named 'dht11@7'") as exc:
        IioDriver(tmp_path, "dht11@7").read()
    assert exc.value.kind == "not_found"
    with pytest.raises(ReadError, match="does not exist") as exc:
        IioDriver(tmp_path / "missing", None).read()
    assert exc.value.kind == "not_found"
    iio_tree(tmp_path, name="dht11@17", n=2)
    with pytest.raises(ReadError, match="several IIO devices"):
        IioDriver(tmp_path, None).read()


def test_iio_driver_maps_kernel_errors(tmp_path, monkeypatch):
    dev = iio_tree(tmp_path)
    driver = IioDriver(tmp_path, None)
    original = Path.read_text

    def failing(self, *a, **kw):
        if self.name == "in_temp_input" and failing.errno:
            raise OSError(failing.errno, {errno.EIO: "Input/output error", errno.ETIMEDOUT: "Timed out"}[failing.errno])
        return original(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", failing)
    for code, kind, text in ((errno.EIO, "io", "(EIO)"), (errno.ETIMEDOUT, "timeout", "(ETIMEDOUT)")):
        failing.errno = code
        with pytest.raises(ReadError) as exc:
            driver.read()
        assert exc.value.kind == kind and text in exc.value.message and "in_temp_input" in exc.value.message
    failing.errno = 0
    (dev / "in_humidityrelative_input").write_text("garbage\n")
    with pytest.raises(ReadError, match="not an integer") as exc:
        driver.read()
    assert exc.value.kind == "other"


def test_simulated_driver_is_deterministic_and_injects_what_it_says():
    config = sim(seed=3, failure_rate=0.3, spike_rate=0.1)
    a, b = SimulatedDriver(config), SimulatedDriver(config)
    assert [a.step() for _ in range(200)] == [b.step() for _ in range(200)]
    driver = SimulatedDriver(config)
    kinds = []
    for _ in range(1000):
        try:
            driver.read()
            kinds.append("ok")
        except ReadError as exc:
            kinds.append(exc.kind)
    failures = sum(driver.injected[k] for k in LIBRARY_MESSAGES)
    assert 250 < failures < 350 and failures == 1000 - kinds.count("ok")
    assert all(kinds.count(k) == driver.injected[k] for k in LIBRARY_MESSAGES)
    assert 40 < driver.injected["spike"] < 100


# ------------------------------------------------------------------ runner
class Recorder:
    def __init__(self) -> None:
        self.readings: list[SensorReading] = []
        self.healths: list[SensorHealth] = []
        self.availability_calls: list[tuple[bool, str | None]] = []

    def reading(self, sensor, reading):
        self.readings.append(reading)

    def health(self, sensor, health):
        self.healths.append(health)

    def availability(self, sensor, online, reason):
        self.availability_calls.append((online, reason))


class Scripted(Driver):
    def __init__(self, outcomes, min_spacing=0.0):
        self.outcomes = list(outcomes)
        self.min_spacing = min_spacing
        self.starts: list[float] = []

    def read(self):
        self.starts.append(time.monotonic())
        item = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(item, BaseException):
            raise item
        return item


def runner_with(driver: Driver, **config) -> tuple[SensorRunner, Recorder]:
    rec = Recorder()
    runner = SensorRunner(
        sim(filters={"jump": {"temperature": None, "humidity": None}}, **config), "C", rec, threading.Event()
    )
    runner.driver = driver
    return runner, rec


def test_retries_back_off_and_stay_inside_the_interval():
    driver = Scripted([ReadError("checksum", "Checksum did not validate. Try again.")])
    runner, rec = runner_with(driver, interval=1.0, retry={"attempts": 10, "delay": 0.1, "factor": 2})
    started = time.monotonic()
    runner.cycle()
    took = time.monotonic() - started
    gaps = [round(b - a, 1) for a, b in zip(driver.starts, driver.starts[1:], strict=False)]
    assert gaps == [0.1, 0.2, 0.4], gaps  # the next (0.8 s later) would run into the next cycle
    assert took < 1.0
    assert rec.readings == [] and rec.healths[-1].consecutive_failures == 4
    assert rec.healths[-1].errors.checksum == 4 and rec.healths[-1].status == "starting"


def test_retry_waits_at_least_the_drivers_spacing_and_a_success_ends_the_cycle():
    boom = ReadError("timeout", "A full buffer was not returned. Try again.")
    driver = Scripted([boom, RawReading(21.0, 40.0)], min_spacing=0.3)
    runner, rec = runner_with(driver, interval=2.0, retry={"attempts": 3, "delay": 0.05})
    runner.cycle()
    assert len(driver.starts) == 2 and driver.starts[1] - driver.starts[0] >= 0.3
    assert [r.temperature for r in rec.readings] == [21.0]
    assert rec.availability_calls == [(True, None)]
    h = rec.healths[-1]
    assert h.status == "ok" and h.consecutive_failures == 0 and h.errors.timeout == 1 and h.attempts == 2


def test_anything_a_driver_raises_is_counted_never_published():
    weird = [ZeroDivisionError("x"), SystemExit(3), KeyError("k"), OSError(errno.EIO, "Input/output error")]
    driver = Scripted([*weird, RawReading(20.0, 50.0)])
    runner, rec = runner_with(driver, interval=5.0, retry={"attempts": 10, "delay": 0.05, "factor": 1})
    runner.cycle()
    h = rec.healths[-1]
    assert h.errors.other == 3 and h.errors.io == 1 and h.reads == 1
    assert [(r.temperature, r.humidity, r.dew_point) for r in rec.readings] == [(20.0, 50.0, 9.3)]


def test_unavailable_after_the_grace_time_then_back():
    driver = Scripted([ReadError("not_found", "DHT sensor not found, check wiring")])
    runner, rec = runner_with(driver, interval=0.2, unavailable_after=0.5)
    runner.cycle()
    runner.supervise()
    assert rec.availability_calls == []
    time.sleep(0.6)
    runner.supervise()
    (online, reason), *_ = rec.availability_calls
    assert not online and "no good read since start" in reason and "not_found: DHT sensor not found" in reason
    assert runner.status() == "unavailable" and rec.healths[-1].status == "unavailable"
    driver.outcomes = [RawReading(20.0, 50.0)]
    runner.cycle()
    assert rec.availability_calls[-1] == (True, None) and runner.status() == "ok"


def test_fahrenheit_reading():
    runner, rec = runner_with(Scripted([RawReading(20.0, 50.0)]))
    runner.unit = "F"
    runner.cycle()
    r = rec.readings[0]
    assert (r.temperature, r.dew_point, r.unit, r.humidity) == (68.0, 48.7, "°F", 50.0)


# ------------------------------------------------------------------ entities
def test_entities_names_ids_availability_and_expiry():
    s = sim(name="enclosure_top", interval=10)
    topics = SensorTopics("p/n/sensors/x/state", "p/n/sensors/x/health", "p/n/sensors/x/availability")
    ents = {e.object_id: e for e in sensor_entities(s, "F", "enclosure_top", "octopi", topics)}
    assert set(ents) == {f"enclosure_top_{k}" for k in ("temperature", "humidity", "dew_point", "problem")}
    t = ents["enclosure_top_temperature"]
    assert t.name == "Enclosure top temperature" and t.options["unit_of_measurement"] == "°F"
    assert t.options["device_class"] == "temperature" and t.options["state_class"] == "measurement"
    assert t.options["expire_after"] == 30 + 10 + 10, "grace + interval + 10"
    assert t.extra_availability == (topics.availability,)
    problem = ents["enclosure_top_problem"]
    assert problem.platform == "binary_sensor" and problem.options["device_class"] == "problem"
    assert problem.extra_availability == (), "it must stay available to report the problem"
    assert problem.options["expire_after"] == 40
    assert label("octopi_enclosure", "octopi") == "Enclosure" and label("octopi", "octopi") == ""
    assert sensor_entities(sim(name="octopi"), "C", "octopi", "octopi", topics)[0].name == "Temperature"
    assert object_ids(["a.b", "a_b", "Room"]) == {"Room": "room", "a.b": "a_b", "a_b": f"a_b_{zlib.crc32(b'a_b'):08x}"}
