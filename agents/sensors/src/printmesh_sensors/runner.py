"""One sensor's life: read cycles with bounded retries, counters, availability.

Each sensor runs on its own thread, so a slow or hung sensor delays nobody else. The
agent's main loop calls ``supervise()`` on every runner: availability is decided there,
from the time of the last good read, so a driver stuck inside ``read()`` still turns
its sensor unavailable on time. The runner catches whatever a driver raises (even
``SystemExit``), counts it by kind, and keeps going.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from printmesh_core.models.sensors import ErrorCounts, LastError, SensorHealth, SensorReading, SensorStatus
from printmesh_sensors.drivers.base import RawReading, ReadError, SensorBase, classify
from printmesh_sensors.filters import Pipeline, Unconfirmed
from printmesh_sensors.physics import dew_point, to_unit

log = logging.getLogger("printmesh.sensors")

MAX_UNCONFIRMED = 5  # extra reads per cycle while waiting for a confirming reading
STUCK_AFTER = 2.0  # seconds in one driver call (a DHT read takes ~0.3 s) before the reason mentions it


class Publisher(Protocol):
    def reading(self, sensor: str, reading: SensorReading) -> None: ...
    def health(self, sensor: str, health: SensorHealth) -> None: ...
    def availability(self, sensor: str, online: bool, reason: str | None) -> None: ...


class Stopped(Exception):
    """The agent is stopping; the read was not attempted."""


class Busy(Exception):
    """Another read of this sensor is running (a hung driver, or a slow one)."""


class SensorRunner:
    def __init__(
        self,
        config: SensorBase,
        unit: str,
        publisher: Publisher,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.name
        self.unit = unit
        self.publisher = publisher
        self.stop = stop
        self.clock = clock
        self.driver = config.build()
        self.pipeline = Pipeline(config)
        self._io = threading.Lock()  # one driver call at a time: the thread and the `read` command
        # Deciding a transition and publishing it is one step, so the thread (online) and the
        # supervisor (offline) cannot publish in the opposite order of their decisions.
        self._publishing = threading.RLock()
        self._lock = threading.Lock()  # the fields below
        self.started = clock()
        self._last_start: float | None = None  # monotonic start of the latest driver call
        self._in_read_since: float | None = None
        self._duration = 0.0  # of the latest driver call, to see whether a retry still fits
        self._last_good: float | None = None  # monotonic
        self._last_good_wall: float | None = None
        self._consecutive = 0
        self._failing_since: float | None = None
        self._reads = 0
        self._attempts = 0
        self._errors = ErrorCounts()
        self._last_error: LastError | None = None
        self._available: bool | None = None  # None: no good read yet, within the grace time
        self._reset_pending = False
        self._health_at: float | None = None
        self._noted: str | None = None

    # ------------------------------------------------------------------ reading
    def attempt(self) -> SensorReading:
        """One driver read through the filters. Raises ReadError, Unconfirmed, Stopped or Busy."""
        if not self._io.acquire(timeout=self.driver.min_spacing + 10.0):
            raise Busy(f"a read of {self.name} has been running for {self._running_for():.0f} s")
        try:
            if self._last_start is not None:
                wait = self._last_start + self.driver.min_spacing - self.clock()
                if wait > 0 and self.stop.wait(wait):
                    raise Stopped()
            if self.stop.is_set():
                raise Stopped()
            if self._reset_pending:
                self.pipeline.reset()
                self._reset_pending = False
            start = self._last_start = self.clock()
            with self._lock:
                self._attempts += 1
                self._in_read_since = start
            raw: RawReading | None = None
            error: ReadError | None = None
            try:
                raw = self.driver.read()
            except BaseException as exc:  # a driver may raise anything, SystemExit included
                error = classify(exc)
            finally:
                self._duration = self.clock() - start
                with self._lock:
                    self._in_read_since = None
            if raw is None:
                error = error or ReadError("other", "the driver returned no reading")
                self._failed(error)
                raise error
            try:
                value, samples = self.pipeline.accept(raw)
            except ReadError as exc:
                self._failed(exc)
                raise
            reading = self._reading(value, samples)
            self._succeeded()
            self.publisher.reading(self.name, reading)
            return reading
        finally:
            self._io.release()

    def cycle(self) -> None:
        """Read until one good reading, within ``retry.attempts`` and before the next cycle is due."""
        retry = self.config.retry
        deadline = self.clock() + self.config.interval
        failures = unconfirmed = 0
        delay = retry.delay
        while True:
            try:
                self.attempt()
                break
            except Unconfirmed:
                unconfirmed += 1
                if unconfirmed > MAX_UNCONFIRMED:
                    break
                wait = 0.0
            except ReadError:
                failures += 1
                if failures >= retry.attempts:
                    break
                wait, delay = delay, delay * retry.factor
            except (Stopped, Busy):
                return
            start = max(self.clock() + wait, (self._last_start or 0.0) + self.driver.min_spacing)
            if start + self._duration > deadline:
                break  # retries never push the next cycle back
            if self.stop.wait(max(0.0, start - self.clock())):
                return
        self.publish_health()

    def run(self) -> None:
        """The sensor's thread: a cycle every ``interval`` seconds until the agent stops."""
        due = self.clock()
        while not self.stop.is_set():
            try:
                self.cycle()
            except Exception:  # a bug here must not end this sensor's thread
                log.exception("sensor %s: read cycle failed", self.name)
            due += self.config.interval
            now = self.clock()
            due = max(due, now)  # after an overrun, start again from now rather than catching up
            self.stop.wait(due - now)

    def close(self) -> None:
        """Release the hardware, unless a read is still stuck in the driver."""
        if not self._io.acquire(timeout=1.0):
            log.warning("sensor %s: a read is still running; the device is not released", self.name)
            return
        try:
            self.driver.close()
        except Exception as exc:
            log.warning("sensor %s: closing the driver failed: %s: %s", self.name, type(exc).__name__, exc)
        finally:
            self._io.release()

    # ------------------------------------------------------------ bookkeeping
    def _reading(self, value: RawReading, samples: int) -> SensorReading:
        dew = dew_point(value.temperature, value.humidity)
        return SensorReading(
            sensor=self.name,
            location=self.config.location,
            temperature=round(to_unit(value.temperature, self.unit), 1),
            humidity=round(value.humidity, 1),
            dew_point=None if dew is None else round(to_unit(dew, self.unit), 1),
            unit="°F" if self.unit == "F" else "°C",
            samples=samples,
            driver=self.config.driver_name,
            model=self.config.model_name,
        )

    def _succeeded(self) -> None:
        with self._publishing:
            with self._lock:
                was = self._available
                self._available = True
                self._last_good, self._last_good_wall = self.clock(), time.time()
                self._consecutive = 0
                self._failing_since = None
                self._reads += 1
            if was is not True:
                if was is False:
                    log.info("sensor %s: reading again", self.name)
                self.publisher.availability(self.name, True, None)

    def _failed(self, error: ReadError) -> None:
        with self._lock:
            self._consecutive += 1
            now = time.time()
            self._failing_since = self._failing_since or now
            setattr(self._errors, error.kind, getattr(self._errors, error.kind) + 1)
            self._last_error = LastError(kind=error.kind, message=error.message[:500], at=round(now, 3))
        log.debug("sensor %s: %s: %s", self.name, error.kind, error.message)
        if error.kind == "other" and error.message != self._noted:
            self._noted = error.message  # a missing library or a driver bug: say it once, not every cycle
            log.warning("sensor %s: %s", self.name, error.message)

    def _running_for(self) -> float:
        with self._lock:
            since = self._in_read_since
        return 0.0 if since is None else self.clock() - since

    def status(self) -> SensorStatus:
        with self._lock:
            return self._status()

    def _status(self) -> SensorStatus:
        if self._available is None:
            return "starting"
        if not self._available:
            return "unavailable"
        return "ok" if self._consecutive == 0 else "failing"

    def health(self) -> SensorHealth:
        with self._lock:
            return SensorHealth(
                sensor=self.name,
                location=self.config.location,
                status=self._status(),
                last_good_read=None if self._last_good_wall is None else round(self._last_good_wall, 3),
                consecutive_failures=self._consecutive,
                failing_since=None if self._failing_since is None else round(self._failing_since, 3),
                reads=self._reads,
                attempts=self._attempts,
                errors=self._errors.model_copy(),
                last_error=self._last_error,
            )

    def publish_health(self) -> None:
        with self._publishing:
            self._health_at = self.clock()
            self.publisher.health(self.name, self.health())

    # ------------------------------------------------------------- supervisor
    def announce_starting(self) -> None:
        with self._publishing:
            self.publisher.availability(self.name, False, "waiting for the first good read")
            self.publish_health()

    def supervise(self) -> None:
        """From the agent's loop: mark the sensor unavailable on time, and keep its health fresh."""
        with self._publishing:
            now = self.clock()
            with self._lock:
                since = self._last_good if self._last_good is not None else self.started
                overdue = now - since > self.config.grace and self._available is not False
                if overdue:
                    self._available = False
                    self._reset_pending = True  # the next good read starts from scratch
                    reason = self._unavailable_reason(now, since)
            if overdue:
                log.warning("sensor %s: unavailable: %s", self.name, reason)
                self.publisher.availability(self.name, False, reason)
                self.publish_health()
            elif self._health_at is None or now - self._health_at > self.config.interval + 5.0:
                self.publish_health()  # the thread is stuck in a read: health still says so

    def _unavailable_reason(self, now: float, since: float) -> str:
        what = "no good read for" if self._last_good is not None else "no good read since start,"
        reason = f"{what} {now - since:.0f} s"
        if self._last_error is not None:
            reason += f"; last error {self._last_error.kind}: {self._last_error.message}"
        if self._in_read_since is not None and now - self._in_read_since > STUCK_AFTER:
            reason += f"; a read has been running for {now - self._in_read_since:.0f} s"
        return reason[:500]
