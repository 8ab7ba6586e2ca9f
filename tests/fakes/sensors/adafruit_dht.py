"""Fake adafruit_dht (4.x API) for tests, replacing the real library at the import boundary.

It keeps the real library's behaviour that matters: ``DHT11/DHT22/DHT21(pin,
use_pulseio=...)``, ``.temperature`` / ``.humidity`` properties that measure at most once
every 2 s and otherwise return the *previous* values (None before any, the last good
ones after a failure), RuntimeErrors with the real messages, and ``exit()``.

What each measurement does comes from the JSON file named by ``FAKE_DHT_SCRIPT``:
``{"steps": [...], "then": "last" | "cycle"}`` where a step is one of
``{"t": 21.5, "h": 40.0}`` (a good frame), ``{"error": "<RuntimeError message>"}``,
``{"raise": "<builtin exception name>", "message": "..."}`` (anything at all),
``{"hang": <seconds>}`` (a stuck read, then a timeout). The file is re-read when it
changes (replace it atomically), restarting at its first step. Every event is appended
as a JSON line to ``FAKE_DHT_LOG``: init, measure (with the step), stale (a property read
again inside the 2 s window: the caller got an old value as if it were new), exit.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
from typing import Any

_lock = threading.Lock()
_script: dict[str, Any] = {"key": None, "steps": [{"t": 21.0, "h": 40.0}], "then": "last", "pos": 0}


def _log(event: str, **fields: Any) -> None:
    path = os.environ.get("FAKE_DHT_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"event": event, "at": time.time(), **fields}) + "\n")


def _next_step() -> dict[str, Any]:
    path = os.environ.get("FAKE_DHT_SCRIPT")
    with _lock:
        if path:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns)
            if key != _script["key"]:
                with open(path) as fh:
                    doc = json.load(fh)
                _script.update(key=key, steps=doc["steps"], then=doc.get("then", "last"), pos=0)
        steps, pos = _script["steps"], _script["pos"]
        if pos >= len(steps):
            pos = pos % len(steps) if _script["then"] == "cycle" else len(steps) - 1
        _script["pos"] = pos + 1
        return dict(steps[pos])


class DHTBase:
    def __init__(self, dht11: bool, pin: Any, use_pulseio: bool = True) -> None:
        self._dht11 = dht11
        self._pin = pin
        self._use_pulseio = use_pulseio
        self._last_called = 0.0
        self._temperature: float | None = None
        self._humidity: float | None = None
        self._served: set[str] = set()  # properties read since the last measurement
        _log("init", cls=type(self).__name__, pin=repr(pin), use_pulseio=use_pulseio)

    def exit(self) -> None:
        _log("exit", pin=repr(self._pin))

    def measure(self, prop: str = "") -> None:
        if self._last_called != 0 and time.monotonic() - self._last_called <= 2:
            if prop in self._served:
                _log("stale", prop=prop, temperature=self._temperature, humidity=self._humidity)
            self._served.add(prop)
            return
        self._last_called = time.monotonic()
        self._served = {prop}
        step = _next_step()
        _log("measure", step=step)
        if "hang" in step:
            time.sleep(float(step["hang"]))
            raise RuntimeError("A full buffer was not returned. Try again.")
        if "error" in step:
            raise RuntimeError(step["error"])
        if "raise" in step:
            raise getattr(builtins, step["raise"])(step.get("message", "boom"))
        self._temperature, self._humidity = step["t"], step["h"]

    @property
    def temperature(self) -> float | None:
        self.measure("temperature")
        return self._temperature

    @property
    def humidity(self) -> float | None:
        self.measure("humidity")
        return self._humidity


class DHT11(DHTBase):
    def __init__(self, pin: Any, use_pulseio: bool = True) -> None:
        super().__init__(True, pin, use_pulseio)


class DHT22(DHTBase):
    def __init__(self, pin: Any, use_pulseio: bool = True) -> None:
        super().__init__(False, pin, use_pulseio)


class DHT21(DHTBase):
    def __init__(self, pin: Any, use_pulseio: bool = True) -> None:
        super().__init__(False, pin, use_pulseio)
