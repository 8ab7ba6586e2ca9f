"""The sensor agent's scenario: live, garbage, failure, birth, offline.

Three sensors, no hardware: "enclosure" (simulated DHT22, 30 % failed reads and 5 % bit-flip
spikes), "room" (simulated DHT11) and "attic" (linux-iio on a fake sysfs tree the scenario
takes away).
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from functools import partial

from ha_check.common import Bus, Context, States, agent, all_in, check_birth, check_configs, check_table, live, state_of
from ha_check.common import stop_agent as stop


def _config(ctx: Context) -> str:
    return f"""sensors:
  sensors:
    - name: enclosure
      driver: simulated
      model: DHT22
      interval: 1
      temperature: 31.0
      humidity: 35.0
      failure_rate: 0.3
      spike_rate: 0.05
      seed: 4
      unavailable_after: 30
    - name: room
      location: office
      driver: simulated
      model: DHT11
      interval: 2
      temperature: 19.0
      humidity: 55.0
    - name: attic
      driver: linux-iio
      model: DHT22
      base_path: {ctx.work}/iio
      interval: 2
      unavailable_after: 4
      retry: {{attempts: 1}}
"""


def _iio(ctx: Context, present: bool) -> None:
    dev = ctx.work / "iio" / "iio:device0"
    if not present:
        shutil.rmtree(dev, ignore_errors=True)
        return
    dev.mkdir(parents=True, exist_ok=True)
    for name, text in (("name", "dht11@4"), ("in_temp_input", "23500"), ("in_humidityrelative_input", "41000")):
        (dev / name).write_text(text + "\n")


def _live(ctx: Context, st: States, bus: Bus) -> None:
    c = ctx.check
    by_id = ctx.component.by_id(ctx.node)
    for eid in check_table(ctx, st, "live"):
        e, state, attrs = by_id[eid], st[eid]["state"], st[eid]["attributes"]
        c(state not in ("unknown", "unavailable"), f"live: {eid} has a live state ({state!r})")
        if e.platform == "sensor":
            lo, hi = e.expect.split("..")
            try:
                ok = float(lo) <= float(state) <= float(hi)
            except ValueError:
                ok = False
            c(ok, f"live: {eid} = {state} within {lo}..{hi}")
        else:
            c(state == "off", f"live: {eid} is off ({state!r})")
            c(attrs.get("status") == "ok" and isinstance(attrs.get("errors"), dict),
              f"live: {eid} has the health as attributes ({sorted(attrs)})")  # fmt: skip
    check_configs(ctx, bus, st, "live")
    errors = st[ctx.eid("enclosure_problem")]["attributes"].get("errors", {})
    c(sum(errors.values()) > 0, f"live: the enclosure's failed reads are counted ({errors})")
    print(f"live: {len(c.results) - c.failed} of {len(c.results)} checks passed", flush=True)


def _are(ids: list[str], want: list[str], st: States) -> bool:
    return [state_of(st, e) for e in ids] == want


def _garbage(ctx: Context, bus: Bus) -> None:
    """Foreign state and health messages, the agent paused (SIGSTOP): each turns the entity unknown."""
    c, ha, base = ctx.check, ctx.ha, f"printmesh/{ctx.node}/sensors/enclosure"
    enc = [ctx.eid(f"enclosure_{k}") for k in ("temperature", "humidity", "dew_point")]
    good = json.dumps({"temperature": 30.0, "humidity": 35.0, "dew_point": 12.5, "unit": "°C"})
    bad_states = ["not json", "{}", json.dumps({"temperature": None, "humidity": None, "dew_point": None}),
                  json.dumps({"temperature": 88.0, "humidity": 40.0, "dew_point": 60.0, "unit": "°F"})]  # fmt: skip
    for i, payload in enumerate(bad_states):
        bus.publish(f"{base}/state", good)
        ha.wait(lambda st: state_of(st, enc[0]) == "30.0", 5, 0.25)
        bus.publish(f"{base}/state", payload)
        want = ["unknown", "unknown", "unknown"] if i < 3 else ["unknown", "40.0", "unknown"]
        st = ha.wait(partial(_are, enc, want), 5, 0.25)
        got = [state_of(st, e) for e in enc]
        c(got == want, f"garbage: state {payload[:40]!r} -> {want} (got {got})")
    prob = ctx.eid("enclosure_problem")
    for payload in ("garbage", "{}"):
        bus.publish(f"{base}/health", json.dumps({"status": "unavailable"}))
        ha.wait(lambda st: state_of(st, prob) == "on", 5, 0.25)
        bus.publish(f"{base}/health", payload)
        st = ha.wait(lambda st: state_of(st, prob) == "unknown", 5, 0.25)
        c(state_of(st, prob) == "unknown", f"garbage: health {payload!r} -> problem unknown")


def _failure(ctx: Context) -> None:
    """The attic's sysfs device disappears, then comes back."""
    c, ha = ctx.check, ctx.ha
    attic = [ctx.eid(f"attic_{k}") for k in ("temperature", "humidity", "dew_point")]
    problem = ctx.eid("attic_problem")
    others = [
        e.entity_id(ctx.node) for e in ctx.component.entities if e.platform == "sensor" and "attic" not in e.object_id
    ]
    _iio(ctx, False)
    removed = time.monotonic()
    st = ha.wait(lambda st: all_in(st, attic, "unavailable"), 15)
    took = time.monotonic() - removed
    c(all_in(st, attic, "unavailable"), f"failure: the attic's measurements are unavailable after {took:.1f} s "
                                        "(unavailable_after: 4)")  # fmt: skip
    c(took >= 2.0, "failure: not before the configured time (a reading was due every 2 s)")
    st = ha.wait(lambda st: state_of(st, problem) == "on", 5)
    c(state_of(st, problem) == "on", "failure: the attic's problem sensor is on (and available)")
    reason = st.get(problem, {}).get("attributes", {}).get("last_error") or {}
    c(reason.get("kind") == "not_found", f"failure: its attributes say why ({reason})")
    c(live(st, others), "failure: the other sensors stay live")
    _iio(ctx, True)
    st = ha.wait(lambda st: live(st, attic) and state_of(st, problem) == "off", 20)
    c(live(st, attic) and state_of(st, problem) == "off", "failure: the attic is back, problem off")


def run(ctx: Context) -> None:
    ha, everything = ctx.ha, ctx.component.ids(ctx.node)
    bus = Bus(ctx)
    _iio(ctx, True)
    try:
        with agent(ctx, _config(ctx)) as proc:
            ha.wait(lambda st: live(st, everything), 40)
            time.sleep(1.0)
            st = ha.states()
            ctx.dump("live_states.json", st)
            _live(ctx, st, bus)
            proc.send_signal(signal.SIGSTOP)  # nothing may overwrite the crafted messages meanwhile
            try:
                _garbage(ctx, bus)
            finally:
                proc.send_signal(signal.SIGCONT)
            prob = ctx.eid("enclosure_problem")
            st = ha.wait(lambda st: live(st, everything) and state_of(st, prob) == "off", 20)
            ctx.check(live(st, everything), "garbage: live again after the next reads")
            _failure(ctx)
            probe = ctx.eid("room_humidity")
            check_birth(ctx, bus, "room_humidity", lambda st: live(st, [probe]))
            stop(ctx, proc, everything, "every entity unavailable, the problem sensors too")
    finally:
        bus.rt.stop()
