#!/usr/bin/env bash
# =============================================================================
# ha-check-host.sh - run the printmesh host agent against a REAL Home Assistant
# (core 2024.3, headless, private mosquitto; via ha_check.sh) and check what HA
# makes of our MQTT discovery.
#
#   scripts/ha-check-host.sh [-o OUT_DIR] [-k]
#
# What it checks (inside ha_check, while the agent runs):
#   1. live    every expected entity exists with a live state (not unknown /
#              unavailable), the right unit / device_class / state_class, numeric
#              states parse, "Last boot" is an ISO timestamp in the past, the
#              >255-char command output is cut to 255, a command that cannot start
#              shows "error", friendly names are "<node> <name>" with no repeated
#              device name, and no unexpected discovery config of ours exists.
#   2. nulls   a state message with every metric null / no mounts, then a non-JSON
#              one, on the shared state topic (what HA sees while a metric vanishes):
#              the templates must cope (HA logs nothing, see 6); "Last boot" keeps
#              its timestamp.
#   3. vanish  temperature and throttling disappear (the fake vcgencmd fails): their
#              entities are removed, then come back when the metric returns.
#   4. birth   one discovery config is deleted (HA drops the entity), then HA's birth
#              message (<prefix>/status = online) is published: the agent must
#              re-announce and the entity come back with a live state.
#   5. offline SIGTERM: the agent publishes offline and every entity turns unavailable.
#   After ha_check:
#   6. HA's log has no WARNING/ERROR line mentioning mqtt, templates, printmesh or
#      our entities; expected entities are missing -> ha_check exits 3.
#   7. registry: one device named after the node, unique ids printmesh_<node>_host_*,
#      has_entity_name, original names without the device name, diagnostic category.
#
# Exit status: 0 all good; 1 a check failed; 2 harness/setup failure; 3 entities missing.
#
# Environment:
#   HA_VENV    HA venv (default /work/ha-venv); installed on first use if absent
#   HA_CHECK   path of ha_check.sh (default /work/shared/tools/ha_check.sh)
#   PRINTMESH  printmesh executable (default <repo>/.venv/bin/printmesh)
#   NODE       node id (default octopi); OUT_DIR (default ${TMPDIR:-/tmp}/ha-check-host-out)
# =============================================================================
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HA_VENV="${HA_VENV:-/work/ha-venv}"
HA_CHECK="${HA_CHECK:-/work/shared/tools/ha_check.sh}"
PRINTMESH="${PRINTMESH:-$REPO/.venv/bin/printmesh}"
NODE="${NODE:-octopi}"
OUT_DIR="${OUT_DIR:-${TMPDIR:-/tmp}/ha-check-host-out}"
KEEP=0

usage() { sed -n '2,/^# =====/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//; /^=====/d'; }
while [ $# -gt 0 ]; do
  case "$1" in
    -o) OUT_DIR="$2"; shift 2 ;;
    -k) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { printf '[ha-check-host] %s\n' "$*" >&2; }

[ -x "$HA_CHECK" ] || { log "ha_check.sh not found at $HA_CHECK (set HA_CHECK)"; exit 2; }
[ -x "$PRINTMESH" ] || { log "printmesh not found at $PRINTMESH (set PRINTMESH)"; exit 2; }
case "$NODE" in *[!A-Za-z0-9_-]*|"") log "NODE must be letters, digits, _ or -"; exit 2 ;; esac
if [ ! -x "$HA_VENV/bin/hass" ]; then
  log "no Home Assistant in $HA_VENV: installing (about 1 min, ~710 MB)"
  HA_VENV="$HA_VENV" "$HA_CHECK" --install || { log "install failed"; exit 2; }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ha-check-host.XXXXXX")"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# --- a deterministic host: fake vcgencmd (temperature + throttling on any machine);
# --- the metrics vanish while $WORK/novc exists.
cat > "$WORK/vcgencmd" <<EOF
#!/bin/sh
[ -e "$WORK/novc" ] && exit 1
case "\$1" in
  measure_temp) echo "temp=48.3'C" ;;
  get_throttled) echo "throttled=0x50005" ;;
  *) exit 1 ;;
esac
EOF
chmod +x "$WORK/vcgencmd"

cat > "$WORK/host.yaml" <<EOF
host:
  interval: 1
  vcgencmd: $WORK/vcgencmd
  temperature_chips: []
  thermal_path: $WORK/no-thermal
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
EOF

# entity_id suffix (after <platform>.<node>_) -> platform name unit device_class state_class kind diag
# kind: num | ts | onoff | text:<expected state or *>
cat > "$WORK/spec.tsv" <<'EOF'
sensor	cpu_usage	CPU usage	%	-	measurement	num	0
sensor	load_1m	Load (1 min)	-	-	measurement	num	0
sensor	load_5m	Load (5 min)	-	-	measurement	num	0
sensor	load_15m	Load (15 min)	-	-	measurement	num	0
sensor	cpu_temperature	CPU temperature	°C	temperature	measurement	num	0
sensor	memory_usage	Memory usage	%	-	measurement	num	0
sensor	memory_available	Memory available	MiB	data_size	measurement	num	0
sensor	swap_usage	Swap usage	%	-	measurement	num	1
sensor	disk_root_usage	Disk usage /	%	-	measurement	num	0
sensor	disk_root_free	Disk free /	GiB	data_size	measurement	num	0
sensor	disk_tmp_usage	Disk usage /tmp	%	-	measurement	num	0
sensor	disk_tmp_free	Disk free /tmp	GiB	data_size	measurement	num	0
sensor	last_boot	Last boot	-	timestamp	-	ts	1
sensor	uptime	Uptime	s	duration	measurement	num	1
binary_sensor	under_voltage	Under-voltage	-	problem	-	onoff	1
binary_sensor	throttled	Throttled	-	problem	-	onoff	1
sensor	command_uptime	Command uptime	-	-	-	text:*	0
sensor	command_long	Command long	-	-	-	text:xxx255	0
sensor	command_missing	Command missing	-	-	-	text:error	0
sensor	cpu_frequency	CPU frequency	MHz	frequency	measurement	num	0	optional
EOF
# psutil cannot read a CPU frequency on every machine: cpu_frequency is checked only if present
EXPECT="$(awk -F'\t' -v n="$NODE" '$9 != "optional" { printf "%s.%s_%s ", $1, n, $2 }' "$WORK/spec.tsv")"

# --- the checker, run by ha_check inside its network namespace with HA's python
cat > "$WORK/checker.py" <<'PYEOF'
"""Phases 1-5 (see ha-check-host.sh). Writes checks.txt and live_states.json to $HA_OUT_DIR."""
import json, os, signal, subprocess, sys, time, urllib.request
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

WORK, PRINTMESH, NODE = sys.argv[1:4]
OUT, URL, TOKEN = os.environ["HA_OUT_DIR"], os.environ["HA_URL"], os.environ["HA_TOKEN"]
BROKER, PORT, PREFIX = os.environ["BROKER_HOST"], int(os.environ["BROKER_PORT"]), os.environ["DISCOVERY_PREFIX"]
STATE_TOPIC = f"printmesh/{NODE}/host/state"
HA_NODE = f"printmesh_{NODE}_host"
results = []


def check(ok, what):
    """Record a check; print failures, and passes except the many per-entity "live:" ones."""
    results.append(("PASS" if ok else "FAIL", what))
    if not ok or not what.startswith("live: "):
        print(("PASS  " if ok else "FAIL  ") + what, flush=True)
    return ok


def states():
    req = urllib.request.Request(URL + "/api/states", headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return {s["entity_id"]: s for s in json.load(resp)}


def wait_for(pred, timeout, step=0.5):
    end = time.monotonic() + timeout
    while True:
        st = states()
        if pred(st) or time.monotonic() > end:
            return st
        time.sleep(step)


spec = {}
for line in open(os.path.join(WORK, "spec.tsv"), encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    spec[f"{f[0]}.{NODE}_{f[1]}"] = dict(platform=f[0], object_id=f[1], name=f[2], unit=f[3], device_class=f[4],
                                       state_class=f[5], kind=f[6], diag=f[7] == "1", optional=len(f) > 8)
required = [e for e, s in spec.items() if not s["optional"]]
DEAD = ("unknown", "unavailable")

# our retained discovery configs, as the broker has them
configs = {}
client = mqtt.Client(client_id="ha-check-host")
client.on_message = lambda c, u, m: configs.__setitem__(m.topic, m.payload)
client.connect(BROKER, PORT)
client.loop_start()
client.subscribe(f"{PREFIX}/+/{HA_NODE}/+/config", qos=1)


def publish(topic, payload, retain=False):
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish()


env = dict(os.environ, PRINTMESH_MQTT__HOST=BROKER, PRINTMESH_MQTT__PORT=str(PORT), PRINTMESH_NODE_ID=NODE,
           PRINTMESH_DISCOVERY__PREFIX=PREFIX)
agent_log = open(os.path.join(OUT, "agent.log"), "w")
agent = subprocess.Popen([PRINTMESH, "host", "-c", os.path.join(WORK, "host.yaml")], env=env,
                         stdout=agent_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def live(st, ids):
    return all(e in st and st[e]["state"] not in DEAD for e in ids)


def number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


try:
    # ---------------------------------------------------------------- 1. live
    st = wait_for(lambda st: live(st, required), 40)
    time.sleep(2.5)  # let the commands (interval 2) and state settle
    st = states()
    json.dump(sorted(st.values(), key=lambda s: s["entity_id"]), open(os.path.join(OUT, "live_states.json"), "w"),
              indent=1, ensure_ascii=False)
    for eid, s in spec.items():
        if eid not in st:
            check(s["optional"], f"live: {eid} exists" + (" (optional, absent on this host)" if s["optional"] else ""))
            continue
        state, attrs = st[eid]["state"], st[eid]["attributes"]
        check(state not in DEAD, f"live: {eid} has a live state ({state[:40]!r})")
        for key, attr in (("unit", "unit_of_measurement"), ("device_class", "device_class"),
                          ("state_class", "state_class")):
            want = None if s[key] == "-" else s[key]
            check(attrs.get(attr) == want, f"live: {eid} {attr} = {want!r} (got {attrs.get(attr)!r})")
        friendly = attrs.get("friendly_name", "")
        check(friendly == f"{NODE} {s['name']}", f"live: {eid} friendly name {friendly!r} == '{NODE} {s['name']}'")
        kind = s["kind"]
        if kind == "num":
            check(number(state), f"live: {eid} state {state!r} is a number")
        elif kind == "ts":
            try:
                ts = datetime.fromisoformat(state)
                ok = ts.tzinfo is not None and ts < datetime.now(timezone.utc)
            except ValueError:
                ok = False
            check(ok, f"live: {eid} state {state!r} is an ISO timestamp with zone, in the past")
        elif kind == "onoff":
            check(state in ("on", "off"), f"live: {eid} state {state!r} is on/off")
        elif kind == "text:xxx255":
            check(state == "x" * 255, f"live: {eid} long output cut to 255 chars (got {len(state)})")
            check(attrs.get("truncated") is False and attrs.get("exit_code") == 0, f"live: {eid} attributes")
        elif kind == "text:error":
            check(state == "error" and attrs.get("exit_code") is None and bool(attrs.get("error")),
                  f"live: {eid} = 'error' with the reason as attribute ({attrs.get('error')!r})")
        elif kind == "text:*":
            check(0 < len(state) <= 255 and attrs.get("exit_code") == 0, f"live: {eid} shows the output")
    ours = {t: json.loads(p) for t, p in configs.items() if p}
    wanted = {f"{PREFIX}/{s['platform']}/{HA_NODE}/{s['object_id']}/config" for e, s in spec.items() if e in st}
    check(set(ours) == wanted, f"live: retained discovery configs == expected entities (extra {sorted(set(ours) - wanted)}, "
                               f"missing {sorted(wanted - set(ours))})")
    for topic, cfg in ours.items():
        dev = cfg.get("device", {}).get("name", "")
        name = cfg.get("name") or ""
        check(bool(name) and not name.lower().startswith(dev.lower()), f"live: {topic}: name {name!r} does not repeat "
                                                                        f"device name {dev!r}")
    print(f"live: {sum(r == 'PASS' for r, _ in results)} of {len(results)} checks passed", flush=True)
    diag_ok = all((ours.get(f"{PREFIX}/{s['platform']}/{HA_NODE}/{s['object_id']}/config", {})
                   .get("entity_category") == "diagnostic") == s["diag"] for e, s in spec.items() if e in st)
    check(diag_ok, "live: entity_category diagnostic exactly on swap, last boot, uptime, throttling")

    # ---------------------------------------------------------------- 2. nulls
    agent.send_signal(signal.SIGSTOP)  # nothing may overwrite the crafted messages meanwhile
    try:
        boot_before = st[f"sensor.{NODE}_last_boot"]["state"]
        nulls = {"ts": time.time(), "cpu": None, "load": None, "temperature": None, "frequency": None, "memory": None,
                 "swap": None, "storage": {}, "uptime": None, "throttling": None, "unavailable": {}}
        publish(STATE_TOPIC, json.dumps(nulls))
        numeric = [e for e, s in spec.items() if s["kind"] in ("num", "onoff") and e in st]
        st2 = wait_for(lambda st: all(st.get(e, {}).get("state") == "unknown" for e in numeric), 5, 0.25)
        check(all(st2.get(e, {}).get("state") == "unknown" for e in numeric),
              "nulls: metrics missing from the state -> unknown (not stale, not an error)")
        check(st2[f"sensor.{NODE}_last_boot"]["state"] == boot_before, "nulls: Last boot keeps its timestamp")
        publish(STATE_TOPIC, "not json")
        time.sleep(1.5)
    finally:
        agent.send_signal(signal.SIGCONT)
    st = wait_for(lambda st: live(st, required), 15)
    check(live(st, required), "nulls: live again after the next sample")

    # ---------------------------------------------------------------- 3. vanish
    vanishing = [f"sensor.{NODE}_cpu_temperature", f"binary_sensor.{NODE}_under_voltage",
                 f"binary_sensor.{NODE}_throttled"]
    open(os.path.join(WORK, "novc"), "w").close()
    st = wait_for(lambda st: not any(e in st for e in vanishing), 15)
    check(not any(e in st for e in vanishing), "vanish: entities of a vanished metric are removed")
    check(live(st, [e for e in required if e not in vanishing]), "vanish: the other entities stay live")
    os.remove(os.path.join(WORK, "novc"))
    st = wait_for(lambda st: live(st, vanishing), 15)
    check(live(st, vanishing), "vanish: they come back, live, when the metric returns")

    # ---------------------------------------------------------------- 4. birth
    probe = f"sensor.{NODE}_cpu_usage"
    publish(f"{PREFIX}/sensor/{HA_NODE}/cpu_usage/config", b"", retain=True)
    st = wait_for(lambda st: probe not in st, 10)
    check(probe not in st, "birth: HA dropped the entity whose config was deleted")
    time.sleep(1.5)
    check(probe not in states(), "birth: the agent does not re-announce on its own (sanity)")
    publish(f"{PREFIX}/status", "online")
    st = wait_for(lambda st: live(st, [probe]), 10)
    check(live(st, [probe]), "birth: re-announced after HA's birth message, live state restored")

    # ---------------------------------------------------------------- 5. offline
    agent.send_signal(signal.SIGTERM)
    rc = agent.wait(15)
    check(rc == 0, f"offline: agent exited cleanly (rc {rc})")
    st = wait_for(lambda st: all(st.get(e, {}).get("state") == "unavailable" for e in required), 10)
    check(all(st.get(e, {}).get("state") == "unavailable" for e in required), "offline: every entity unavailable")
finally:
    if agent.poll() is None:
        agent.send_signal(signal.SIGCONT)
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
    client.loop_stop()
    with open(os.path.join(OUT, "checks.txt"), "w") as fh:
        fh.writelines(f"{r}  {w}\n" for r, w in results)

failed = [w for r, w in results if r == "FAIL"]
print(f"{len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
sys.exit(1 if failed or not results else 0)
PYEOF

# --- run
log "expected: $EXPECT"
rc=0
# shellcheck disable=SC2016  # $HA_PYTHON is set by ha_check for the command, expanded there
HA_VENV="$HA_VENV" KEEP="$KEEP" "$HA_CHECK" -o "$OUT_DIR" -w 20 -t 240 -e "$EXPECT" -- \
  sh -c '"$HA_PYTHON" "$1/checker.py" "$1" "$2" "$3"' checker "$WORK" "$PRINTMESH" "$NODE" || rc=$?
if [ "$rc" = 2 ] || [ ! -f "$OUT_DIR/states.json" ]; then log "ha_check failed (rc $rc)"; exit 2; fi

# --- 6. HA's log
fail=0
[ "$rc" = 0 ] || { log "ha_check/checker exit status $rc (see $OUT_DIR/command.log, checks.txt)"; fail=1; }
PATTERN="mqtt|template|printmesh|${NODE}_|/${NODE}/|sensor\\.|binary_sensor\\."
if grep -Ei "$PATTERN" "$OUT_DIR/ha_warnings.txt" > "$OUT_DIR/our_warnings.txt"; then
  log "Home Assistant logged warnings/errors about us:"; sed 's/^/  /' "$OUT_DIR/our_warnings.txt" >&2; fail=1
else
  log "PASS  HA log: no warning/error about mqtt, templates or our entities"
fi
if grep -Eiv "$PATTERN" "$OUT_DIR/ha_warnings.txt" | grep -q .; then
  log "other HA warnings (not counted):"; grep -Eiv "$PATTERN" "$OUT_DIR/ha_warnings.txt" | sed 's/^/  /' >&2
fi

# --- 7. registry
"$HA_VENV/bin/python" - "$OUT_DIR/registry.json" "$WORK/spec.tsv" "$NODE" <<'PYEOF' || fail=1
import json, sys
reg, spec_path, node = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
ents = {e["entity_id"]: e for e in reg["entities"]}
devs = {d["id"]: d for d in reg["devices"]}
bad = []
device_ids = set()
for line in open(spec_path, encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    eid = f"{f[0]}.{node}_{f[1]}"
    e = ents.get(eid)
    if e is None:
        if len(f) <= 8:
            bad.append(f"{eid}: not in the entity registry")
        continue
    device_ids.add(e["device_id"])
    dev = devs.get(e["device_id"], {})
    if e["platform"] != "mqtt" or e["unique_id"] != f"printmesh_{node}_host_{f[1]}":
        bad.append(f"{eid}: platform {e['platform']} unique_id {e['unique_id']}")
    if not e["has_entity_name"] or e["original_name"] != f[2] or f[2].lower().startswith(dev.get("name", "").lower()):
        bad.append(f"{eid}: has_entity_name {e['has_entity_name']} original_name {e['original_name']!r}")
    if (e["entity_category"] == "diagnostic") != (f[7] == "1"):
        bad.append(f"{eid}: entity_category {e['entity_category']}")
if len(device_ids) != 1:
    bad.append(f"entities spread over {len(device_ids)} devices")
else:
    dev = devs.get(next(iter(device_ids)), {})
    if dev.get("name") != node or ["mqtt", f"printmesh_{node}"] not in dev.get("identifiers", []):
        bad.append(f"device {dev.get('name')!r} {dev.get('identifiers')}")
for b in bad:
    print(f"[ha-check-host] FAIL  registry: {b}", file=sys.stderr)
if not bad:
    print("[ha-check-host] PASS  registry: one device, unique ids, names, categories", file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

log "checks: $OUT_DIR/checks.txt; HA states while live: $OUT_DIR/live_states.json"
if [ "$fail" = 0 ]; then log "OK"; exit 0; fi
[ "$rc" = 3 ] && exit 3
log "FAILED"; exit 1
