"""What every scenario shares: the tally of checks, Home Assistant's REST API, the MQTT bus, the table checks.

Runs inside ha_check.sh's network namespace, which sets BROKER_HOST, BROKER_PORT,
DISCOVERY_PREFIX, HA_URL, HA_TOKEN and HA_OUT_DIR.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ha_check.table import Component
from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import Message, MqttRuntime

States = dict[str, dict[str, Any]]
MISSING = "<missing>"  # not an entity in HA (a state is never this)
DEAD = ("unknown", "unavailable", MISSING)


class Check:
    """Records checks in order; ``quiet_prefix`` passes are only counted (the many per-entity ones)."""

    def __init__(self, quiet_prefix: str = "live: ") -> None:
        self.results: list[tuple[str, str]] = []
        self.quiet_prefix = quiet_prefix

    def __call__(self, ok: bool, what: str) -> bool:
        self.results.append(("PASS" if ok else "FAIL", what))
        if not ok or not what.startswith(self.quiet_prefix):
            print(("PASS  " if ok else "FAIL  ") + what, flush=True)
        return ok

    @property
    def failed(self) -> int:
        return sum(r == "FAIL" for r, _ in self.results)

    def write(self, path: Path) -> None:
        with path.open("a", encoding="utf-8") as fh:
            fh.writelines(f"{r}  {w}\n" for r, w in self.results)


class HA:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def request(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, str, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET")
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()

    def states(self) -> States:
        return {s["entity_id"]: s for s in json.loads(self.request("/api/states")[2])}

    def press(self, entity_id: str) -> None:
        self.request("/api/services/button/press", {"entity_id": entity_id})

    def wait(self, pred: Callable[[States], bool], timeout: float, step: float = 0.4) -> States:
        end = time.monotonic() + timeout
        while True:
            st = self.states()
            if pred(st) or time.monotonic() > end:
                return st
            time.sleep(step)


def state_of(st: States, eid: str) -> str:
    return str(st.get(eid, {}).get("state", MISSING))


def live(st: States, ids: list[str]) -> bool:
    return all(state_of(st, e) not in DEAD for e in ids)


def all_in(st: States, ids: list[str], value: str) -> bool:
    return all(state_of(st, e) == value for e in ids)


class Bus:
    """Records our retained discovery configs and every other message on the filters given."""

    def __init__(self, ctx: Context, *filters: str) -> None:
        self.configs: dict[str, bytes] = {}
        self.last: dict[str, bytes] = {}
        self.seen: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        cfg = MqttConfig(host=ctx.host, port=ctx.port)
        self.rt = MqttRuntime(cfg, "printmesh", f"ha-check-{ctx.component.name}-{os.getpid()}")
        self.rt.subscribe(f"{ctx.prefix}/+/{ctx.component.ha_node(ctx.node)}/+/config", self._config, qos=1)
        for f in filters:
            self.rt.subscribe(f, self._other, qos=1)
        self.rt.start()
        if not self.rt.wait_connected(10):
            raise RuntimeError("cannot reach the broker")

    def _config(self, m: Message) -> None:
        with self.lock:
            self.configs[m.topic] = m.payload

    def _other(self, m: Message) -> None:
        with self.lock:
            self.seen.append((m.topic, m.payload))
            if m.payload:
                self.last[m.topic] = m.payload

    def ours(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {t: json.loads(p) for t, p in self.configs.items() if p}

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.rt.publish_absolute(topic, payload, qos=1, retain=retain)

    def wait(self, pred: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                return False
            time.sleep(0.1)
        return True


@dataclass
class Context:
    """One scenario's world: the component's table, HA, the broker, where results go."""

    component: Component
    node: str
    work: Path
    mode: str
    check: Check

    def __post_init__(self) -> None:
        env = os.environ
        self.host, self.port, self.prefix = env["BROKER_HOST"], int(env["BROKER_PORT"]), env["DISCOVERY_PREFIX"]
        self.out = Path(env["HA_OUT_DIR"])
        self.ha = HA(env["HA_URL"], env["HA_TOKEN"])

    def eid(self, object_id: str) -> str:
        (e,) = [e for e in self.component.entities if e.object_id == object_id]
        return e.entity_id(self.node)

    def agent_env(self) -> dict[str, str]:
        return dict(os.environ, PRINTMESH_MQTT__HOST=self.host, PRINTMESH_MQTT__PORT=str(self.port),
                    PRINTMESH_NODE_ID=self.node, PRINTMESH_DISCOVERY__PREFIX=self.prefix)  # fmt: skip

    def dump(self, name: str, st: States) -> None:
        text = json.dumps(sorted(st.values(), key=lambda s: s["entity_id"]), indent=1, ensure_ascii=False)
        (self.out / name).write_text(text, encoding="utf-8")


def check_table(ctx: Context, st: States, phase: str) -> list[str]:
    """Per entity: exists, friendly name, unit, device and state class. Returns the ids present."""
    present = []
    for e in ctx.component.entities:
        eid = e.entity_id(ctx.node)
        if eid not in st:
            note = " (optional, absent on this host)" if e.optional else ""
            ctx.check(e.optional, f"{phase}: {eid} exists{note}")
            continue
        ctx.check(True, f"{phase}: {eid} exists")
        present.append(eid)
        attrs = st[eid]["attributes"]
        friendly = attrs.get("friendly_name")
        ctx.check(friendly == f"{ctx.node} {e.name}", f"{phase}: {eid} friendly name {friendly!r}")
        for want, attr in ((e.unit, "unit_of_measurement"), (e.device_class, "device_class"),
                           (e.state_class, "state_class")):  # fmt: skip
            ctx.check(attrs.get(attr) == want, f"{phase}: {eid} {attr} = {want!r} (got {attrs.get(attr)!r})")
    return present


def check_configs(ctx: Context, bus: Bus, st: States, phase: str) -> None:
    """Exactly our configs are retained; names do not repeat the device; diagnostic where the table says."""
    c, comp, prefix = ctx.check, ctx.component, ctx.prefix
    ours = bus.ours()
    present = [e for e in comp.entities if e.entity_id(ctx.node) in st]
    wanted = {comp.config_topic(prefix, ctx.node, e) for e in present}
    c(set(ours) == wanted, f"{phase}: retained discovery configs == expected entities "
                           f"(extra {sorted(set(ours) - wanted)}, missing {sorted(wanted - set(ours))})")  # fmt: skip
    for topic, cfg in sorted(ours.items()):
        dev, name = cfg.get("device", {}).get("name", ""), cfg.get("name") or ""
        c(bool(name) and not name.lower().startswith(dev.lower()),
          f"{phase}: {topic}: name {name!r} does not repeat device name {dev!r}")  # fmt: skip
    diag = [(ours.get(comp.config_topic(prefix, ctx.node, e), {}).get("entity_category") == "diagnostic")
            == e.diagnostic for e in present]  # fmt: skip
    c(all(diag), f"{phase}: entity_category diagnostic exactly on {[e.object_id for e in present if e.diagnostic]}")


def check_birth(ctx: Context, bus: Bus, object_id: str, back: Callable[[States], bool], sanity: bool = False) -> None:
    """Delete one config (HA drops the entity), then HA's birth message: the component re-announces."""
    e = next(e for e in ctx.component.entities if e.object_id == object_id)
    probe = e.entity_id(ctx.node)
    bus.publish(ctx.component.config_topic(ctx.prefix, ctx.node, e), b"", retain=True)
    st = ctx.ha.wait(lambda st: probe not in st, 10)
    ctx.check(probe not in st, "birth: HA dropped the entity whose config was deleted")
    if sanity:
        time.sleep(1.5)
        ctx.check(probe not in ctx.ha.states(), "birth: the agent does not re-announce on its own (sanity)")
    bus.publish(f"{ctx.prefix}/status", "online")
    st = ctx.ha.wait(back, 10)
    ctx.check(back(st), f"birth: {probe} re-announced after HA's birth message")


@contextlib.contextmanager
def agent(ctx: Context, config_yaml: str) -> Iterator[subprocess.Popen[bytes]]:
    """The component's agent (``printmesh <component> -c``) on the harness's broker, always stopped afterwards."""
    cfg = ctx.work / f"{ctx.component.name}.yaml"
    cfg.write_text(config_yaml, encoding="utf-8")
    exe = os.environ.get("PRINTMESH") or str(Path(sys.executable).parent / "printmesh")
    with (ctx.out / "agent.log").open("w") as log:
        proc = subprocess.Popen([exe, ctx.component.name, "-c", str(cfg)], env=ctx.agent_env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def stop_agent(ctx: Context, proc: subprocess.Popen[bytes], everything: list[str], what: str) -> None:
    """SIGTERM: the agent publishes offline and every entity turns unavailable."""
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(15)
    ctx.check(rc == 0, f"offline: agent exited cleanly (rc {rc})")
    st = ctx.ha.wait(lambda st: all_in(st, everything, "unavailable"), 10)
    ctx.check(all_in(st, everything, "unavailable"), f"offline: {what}")
