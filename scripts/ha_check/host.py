"""The host agent's scenario: live, nulls, vanish, birth, offline.

A deterministic host: a fake vcgencmd reports temperature and throttling on any machine; the
metrics vanish while ``<work>/novc`` exists.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime

from ha_check.common import (
    DEAD,
    Bus,
    Context,
    States,
    agent,
    all_in,
    check_birth,
    check_configs,
    check_table,
    live,
    stop_agent,
)
from printmesh_host.probes import RECHECK


def _config(ctx: Context) -> str:
    vc = ctx.work / "vcgencmd"
    vc.write_text(f"""#!/bin/sh
[ -e "{ctx.work}/novc" ] && exit 1
case "$1" in
  measure_temp) echo "temp=48.3'C" ;;
  get_throttled) echo "throttled=0x50005" ;;
  *) exit 1 ;;
esac
""")
    vc.chmod(0o755)
    return f"""host:
  interval: 1
  vcgencmd: {vc}
  temperature_chips: []
  thermal_path: {ctx.work}/no-thermal
  mounts: ["/", "/tmp"]
  commands:
    - name: uptime
      argv: [uptime]
      interval: 2
    - name: long
      shell: true
      command: "head -c 300 /dev/zero | tr '\\\\0' x; echo"
      interval: 2
    - name: missing
      argv: [/nonexistent/printmesh-ha-check]
      interval: 2
"""


def _number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _check_state(ctx: Context, st: States, eid: str, kind: str) -> None:
    c = ctx.check
    state, attrs = st[eid]["state"], st[eid]["attributes"]
    c(state not in DEAD, f"live: {eid} has a live state ({state[:40]!r})")
    if kind == "num":
        c(_number(state), f"live: {eid} state {state!r} is a number")
    elif kind == "ts":
        try:
            ts = datetime.fromisoformat(state)
            ok = ts.tzinfo is not None and ts < datetime.now(UTC)
        except ValueError:
            ok = False
        c(ok, f"live: {eid} state {state!r} is an ISO timestamp with zone, in the past")
    elif kind == "onoff":
        c(state in ("on", "off"), f"live: {eid} state {state!r} is on/off")
    elif kind == "text:xxx255":
        c(state == "x" * 255, f"live: {eid} long output cut to 255 chars (got {len(state)})")
        c(attrs.get("truncated") is False and attrs.get("exit_code") == 0, f"live: {eid} attributes")
    elif kind == "text:error":
        c(state == "error" and attrs.get("exit_code") is None and bool(attrs.get("error")),
          f"live: {eid} = 'error' with the reason as attribute ({attrs.get('error')!r})")  # fmt: skip
    elif kind == "text:*":
        c(0 < len(state) <= 255 and attrs.get("exit_code") == 0, f"live: {eid} shows the output")


def run(ctx: Context) -> None:
    c, ha, node = ctx.check, ctx.ha, ctx.node
    required = ctx.component.ids(node, required_only=True)
    by_id = ctx.component.by_id(node)
    bus = Bus(ctx)
    try:
        with agent(ctx, _config(ctx)) as proc:
            # ------------------------------------------------------------ 1. live
            ha.wait(lambda st: live(st, required), 40)
            time.sleep(2.5)  # let the commands (interval 2) and state settle
            st = ha.states()
            ctx.dump("live_states.json", st)
            for eid in check_table(ctx, st, "live"):
                _check_state(ctx, st, eid, by_id[eid].expect)
            check_configs(ctx, bus, st, "live")
            print(f"live: {len(c.results) - c.failed} of {len(c.results)} checks passed", flush=True)

            # ------------------------------------------------------------ 2. nulls
            proc.send_signal(signal.SIGSTOP)  # nothing may overwrite the crafted messages meanwhile
            topic = f"printmesh/{node}/host/state"
            try:
                boot = f"sensor.{node}_last_boot"
                boot_before = st[boot]["state"]
                nulls: dict[str, object] = {k: None for k in ("cpu", "load", "temperature", "frequency", "memory",
                                                              "swap", "uptime", "throttling")}  # fmt: skip
                nulls |= {"ts": time.time(), "storage": {}, "unavailable": {}}
                bus.publish(topic, json.dumps(nulls))
                numeric = [e for e in st if e in by_id and by_id[e].expect in ("num", "onoff")]
                st2 = ha.wait(lambda st: all_in(st, numeric, "unknown"), 5, 0.25)
                c(all_in(st2, numeric, "unknown"), "nulls: metrics missing from the state -> unknown (not stale, "
                                                   "not an error)")  # fmt: skip
                c(st2[boot]["state"] == boot_before, "nulls: Last boot keeps its timestamp")
                bus.publish(topic, "not json")
                time.sleep(1.5)
            finally:
                proc.send_signal(signal.SIGCONT)
            st = ha.wait(lambda st: live(st, required), 15)
            c(live(st, required), "nulls: live again after the next sample")

            # ------------------------------------------------------------ 3. vanish
            vanishing = [ctx.eid("cpu_temperature"), ctx.eid("under_voltage"), ctx.eid("throttled")]
            novc = ctx.work / "novc"
            novc.touch()
            st = ha.wait(lambda st: not any(e in st for e in vanishing), 15)
            c(not any(e in st for e in vanishing), "vanish: entities of a vanished metric are removed")
            c(live(st, [e for e in required if e not in vanishing]), "vanish: the other entities stay live")
            novc.unlink()
            # a host that lost its temperature source searches for one again only every RECHECK s
            st = ha.wait(lambda st: live(st, vanishing), RECHECK + 15)
            c(live(st, vanishing), "vanish: they come back, live, when the metric returns")

            # ------------------------------------------------------------ 4. birth
            probe = ctx.eid("cpu_usage")
            check_birth(ctx, bus, "cpu_usage", lambda st: live(st, [probe]), sanity=True)

            # ------------------------------------------------------------ 5. offline
            stop_agent(ctx, proc, required, "every entity unavailable")
    finally:
        bus.rt.stop()
