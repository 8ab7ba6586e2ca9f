#!/usr/bin/env bash
# =============================================================================
# ha-check-sensors.sh - run the printmesh sensor agent against a REAL Home
# Assistant (core 2024.3, headless, private mosquitto; via ha_check.sh) and check
# what HA makes of its MQTT discovery.
#
#   scripts/ha-check-sensors.sh [-o OUT_DIR] [-k]
#
# Three sensors, no hardware needed: "enclosure" (simulated DHT22, 30 % failed reads
# and 5 % bit-flip spikes), "room" (simulated DHT11) and "attic" (linux-iio on a fake
# sysfs tree that the checker can take away).
#
# What it checks (inside ha_check, while the agent runs):
#   1. live    every entity (temperature, humidity, dew point, problem per sensor)
#              exists with a live state, the right unit / device_class /
#              state_class, numbers within the simulated range, problem "off",
#              the health as its attributes, friendly names "<node> <name>" that do
#              not repeat the device name, and exactly our discovery configs.
#   2. garbage with the agent paused (SIGSTOP): a non-JSON state, an empty object,
#              nulls and a reading in the wrong unit; a non-JSON and an empty health.
#              Each must turn the entity "unknown" and HA must log nothing (see 6).
#   3. failure the attic's sysfs device disappears: after sensors.unavailable_after
#              its measurements turn "unavailable" while its problem sensor stays
#              available and turns "on"; the other sensors stay live. The device
#              comes back: live again, problem "off".
#   4. birth   one config is deleted (HA drops the entity), then HA's birth message:
#              the agent re-announces and republishes, the entity is live again.
#   5. offline SIGTERM: every entity, the problem sensors too, turns unavailable.
#   After ha_check:
#   6. HA's log has no WARNING/ERROR line about mqtt, templates, printmesh or our
#      entities; expected entities missing -> ha_check exits 3.
#   7. registry: one device named after the node, unique ids
#      printmesh_<node>_sensors_*, has_entity_name, original names, diagnostic
#      category exactly on the problem sensors.
#
# Exit status: 0 all good; 1 a check failed; 2 harness/setup failure; 3 entities missing.
#
# Environment:
#   HA_VENV    HA venv (default /work/ha-venv); installed on first use if absent
#   HA_CHECK   path of ha_check.sh (default /work/shared/tools/ha_check.sh)
#   PRINTMESH  printmesh executable (default <repo>/.venv/bin/printmesh)
#   NODE       node id (default octopi); OUT_DIR (default ${TMPDIR:-/tmp}/ha-check-sensors-out)
# =============================================================================
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HA_VENV="${HA_VENV:-/work/ha-venv}"
HA_CHECK="${HA_CHECK:-/work/shared/tools/ha_check.sh}"
PRINTMESH="${PRINTMESH:-$REPO/.venv/bin/printmesh}"
NODE="${NODE:-octopi}"
OUT_DIR="${OUT_DIR:-${TMPDIR:-/tmp}/ha-check-sensors-out}"
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
log() { printf '[ha-check-sensors] %s\n' "$*" >&2; }

[ -x "$HA_CHECK" ] || { log "ha_check.sh not found at $HA_CHECK (set HA_CHECK)"; exit 2; }
[ -x "$PRINTMESH" ] || { log "printmesh not found at $PRINTMESH (set PRINTMESH)"; exit 2; }
case "$NODE" in *[!A-Za-z0-9_-]*|"") log "NODE must be letters, digits, _ or -"; exit 2 ;; esac
if [ ! -x "$HA_VENV/bin/hass" ]; then
  log "no Home Assistant in $HA_VENV: installing (about 1 min, ~710 MB)"
  HA_VENV="$HA_VENV" "$HA_CHECK" --install || { log "install failed"; exit 2; }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ha-check-sensors.XXXXXX")"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

cat > "$WORK/sensors.yaml" <<EOF
sensors:
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
      base_path: $WORK/iio
      interval: 2
      unavailable_after: 4
      retry: {attempts: 1}
EOF

# entity_id suffix (after <platform>.<node>_) -> platform name unit device_class state_class lo hi diag
cat > "$WORK/spec.tsv" <<'EOF'
sensor	enclosure_temperature	Enclosure temperature	°C	temperature	measurement	25	37	0
sensor	enclosure_humidity	Enclosure humidity	%	humidity	measurement	25	45	0
sensor	enclosure_dew_point	Enclosure dew point	°C	temperature	measurement	5	20	0
binary_sensor	enclosure_problem	Enclosure sensor	-	problem	-	-	-	1
sensor	room_temperature	Room temperature	°C	temperature	measurement	15	23	0
sensor	room_humidity	Room humidity	%	humidity	measurement	45	65	0
sensor	room_dew_point	Room dew point	°C	temperature	measurement	5	15	0
binary_sensor	room_problem	Room sensor	-	problem	-	-	-	1
sensor	attic_temperature	Attic temperature	°C	temperature	measurement	23.4	23.6	0
sensor	attic_humidity	Attic humidity	%	humidity	measurement	40.9	41.1	0
sensor	attic_dew_point	Attic dew point	°C	temperature	measurement	9.4	9.6	0
binary_sensor	attic_problem	Attic sensor	-	problem	-	-	-	1
EOF
EXPECT="$(awk -F'\t' -v n="$NODE" '{ printf "%s.%s_%s ", $1, n, $2 }' "$WORK/spec.tsv")"

# --- the checker, run by ha_check inside its network namespace with HA's python
cat > "$WORK/checker.py" <<'PYEOF'
"""Phases 1-5 (see ha-check-sensors.sh). Writes checks.txt and live_states.json to $HA_OUT_DIR."""
import json, os, shutil, signal, subprocess, sys, time, urllib.request

import paho.mqtt.client as mqtt

WORK, PRINTMESH, NODE = sys.argv[1:4]
OUT, URL, TOKEN = os.environ["HA_OUT_DIR"], os.environ["HA_URL"], os.environ["HA_TOKEN"]
BROKER, PORT, PREFIX = os.environ["BROKER_HOST"], int(os.environ["BROKER_PORT"]), os.environ["DISCOVERY_PREFIX"]
BASE = f"printmesh/{NODE}/sensors"
HA_NODE = f"printmesh_{NODE}_sensors"
DEAD = ("unknown", "unavailable")
results = []


def check(ok, what):
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


def iio(present):
    dev = os.path.join(WORK, "iio", "iio:device0")
    if not present:
        shutil.rmtree(dev, ignore_errors=True)
        return
    os.makedirs(dev, exist_ok=True)
    for name, text in (("name", "dht11@4"), ("in_temp_input", "23500"), ("in_humidityrelative_input", "41000")):
        with open(os.path.join(dev, name), "w") as fh:
            fh.write(text + "\n")


spec = {}
for line in open(os.path.join(WORK, "spec.tsv"), encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    spec[f"{f[0]}.{NODE}_{f[1]}"] = dict(platform=f[0], object_id=f[1], name=f[2], unit=f[3], device_class=f[4],
                                       state_class=f[5], lo=f[6], hi=f[7], diag=f[8] == "1")
everything = list(spec)
measurements = [e for e, s in spec.items() if s["platform"] == "sensor"]
problems = [e for e, s in spec.items() if s["platform"] == "binary_sensor"]

configs = {}
client = mqtt.Client(client_id="ha-check-sensors")
client.on_message = lambda c, u, m: configs.__setitem__(m.topic, m.payload)
client.connect(BROKER, PORT)
client.loop_start()
client.subscribe(f"{PREFIX}/+/{HA_NODE}/+/config", qos=1)


def publish(topic, payload, retain=False):
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish()


def live(st, ids):
    return all(e in st and st[e]["state"] not in DEAD for e in ids)


iio(True)
env = dict(os.environ, PRINTMESH_MQTT__HOST=BROKER, PRINTMESH_MQTT__PORT=str(PORT), PRINTMESH_NODE_ID=NODE,
           PRINTMESH_DISCOVERY__PREFIX=PREFIX)
agent_log = open(os.path.join(OUT, "agent.log"), "w")
agent = subprocess.Popen([PRINTMESH, "sensors", "-c", os.path.join(WORK, "sensors.yaml")], env=env,
                         stdout=agent_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
try:
    # ---------------------------------------------------------------- 1. live
    st = wait_for(lambda st: live(st, everything), 40)
    time.sleep(1.0)
    st = states()
    json.dump(sorted(st.values(), key=lambda s: s["entity_id"]), open(os.path.join(OUT, "live_states.json"), "w"),
              indent=1, ensure_ascii=False)
    for eid, s in spec.items():
        if not check(eid in st, f"live: {eid} exists"):
            continue
        state, attrs = st[eid]["state"], st[eid]["attributes"]
        check(state not in DEAD, f"live: {eid} has a live state ({state!r})")
        for key, attr in (("unit", "unit_of_measurement"), ("device_class", "device_class"),
                          ("state_class", "state_class")):
            want = None if s[key] == "-" else s[key]
            check(attrs.get(attr) == want, f"live: {eid} {attr} = {want!r} (got {attrs.get(attr)!r})")
        friendly = attrs.get("friendly_name", "")
        check(friendly == f"{NODE} {s['name']}", f"live: {eid} friendly name {friendly!r} == '{NODE} {s['name']}'")
        if s["platform"] == "sensor":
            try:
                ok = float(s["lo"]) <= float(state) <= float(s["hi"])
            except ValueError:
                ok = False
            check(ok, f"live: {eid} = {state} within {s['lo']}..{s['hi']}")
        else:
            check(state == "off", f"live: {eid} is off ({state!r})")
            check(attrs.get("status") == "ok" and isinstance(attrs.get("errors"), dict),
                  f"live: {eid} has the health as attributes ({sorted(attrs)})")
    ours = {t: json.loads(p) for t, p in configs.items() if p}
    wanted = {f"{PREFIX}/{s['platform']}/{HA_NODE}/{s['object_id']}/config" for s in spec.values()}
    check(set(ours) == wanted, f"live: retained discovery configs == expected (extra {sorted(set(ours) - wanted)}, "
                               f"missing {sorted(wanted - set(ours))})")
    for topic, cfg in ours.items():
        dev, name = cfg.get("device", {}).get("name", ""), cfg.get("name") or ""
        check(bool(name) and not name.lower().startswith(dev.lower()), f"live: {topic}: name {name!r} vs device {dev!r}")
    enclosure_errors = st[f"binary_sensor.{NODE}_enclosure_problem"]["attributes"].get("errors", {})
    check(sum(enclosure_errors.values()) > 0, f"live: the enclosure's failed reads are counted ({enclosure_errors})")
    print(f"live: {sum(r == 'PASS' for r, _ in results)} of {len(results)} checks passed", flush=True)

    # ---------------------------------------------------------------- 2. garbage
    agent.send_signal(signal.SIGSTOP)  # nothing may overwrite the crafted messages meanwhile
    try:
        enc = [f"sensor.{NODE}_enclosure_{k}" for k in ("temperature", "humidity", "dew_point")]
        bad_states = ["not json", "{}", json.dumps({"temperature": None, "humidity": None, "dew_point": None}),
                      json.dumps({"temperature": 88.0, "humidity": 40.0, "dew_point": 60.0, "unit": "°F"})]
        for i, payload in enumerate(bad_states):
            publish(f"{BASE}/enclosure/state", json.dumps({"temperature": 30.0, "humidity": 35.0, "dew_point": 12.5,
                                                           "unit": "°C"}))
            wait_for(lambda st: st.get(enc[0], {}).get("state") == "30.0", 5, 0.25)
            publish(f"{BASE}/enclosure/state", payload)
            want = ["unknown", "unknown", "unknown"] if i < 3 else ["unknown", "40.0", "unknown"]
            st2 = wait_for(lambda st: [st.get(e, {}).get("state") for e in enc] == want, 5, 0.25)
            got = [st2.get(e, {}).get("state") for e in enc]
            check(got == want, f"garbage: state {payload[:40]!r} -> {want} (got {got})")
        prob = f"binary_sensor.{NODE}_enclosure_problem"
        for payload in ("garbage", "{}"):
            publish(f"{BASE}/enclosure/health", json.dumps({"status": "unavailable"}))
            wait_for(lambda st: st.get(prob, {}).get("state") == "on", 5, 0.25)
            publish(f"{BASE}/enclosure/health", payload)
            st2 = wait_for(lambda st: st.get(prob, {}).get("state") == "unknown", 5, 0.25)
            check(st2.get(prob, {}).get("state") == "unknown", f"garbage: health {payload!r} -> problem unknown")
    finally:
        agent.send_signal(signal.SIGCONT)
    st = wait_for(lambda st: live(st, everything) and st[prob]["state"] == "off", 20)
    check(live(st, everything), "garbage: live again after the next reads")

    # ---------------------------------------------------------------- 3. failure
    attic = [f"sensor.{NODE}_attic_{k}" for k in ("temperature", "humidity", "dew_point")]
    attic_problem = f"binary_sensor.{NODE}_attic_problem"
    others = [e for e in measurements if "attic" not in e]
    iio(False)
    removed = time.monotonic()
    st = wait_for(lambda st: all(st.get(e, {}).get("state") == "unavailable" for e in attic), 15)
    took = time.monotonic() - removed
    check(all(st.get(e, {}).get("state") == "unavailable" for e in attic),
          f"failure: the attic's measurements are unavailable after {took:.1f} s (unavailable_after: 4)")
    check(took >= 2.0, "failure: not before the configured time (a reading was due every 2 s)")
    st = wait_for(lambda st: st.get(attic_problem, {}).get("state") == "on", 5)
    check(st.get(attic_problem, {}).get("state") == "on", "failure: the attic's problem sensor is on (and available)")
    reason = st.get(attic_problem, {}).get("attributes", {}).get("last_error") or {}
    check(reason.get("kind") == "not_found", f"failure: its attributes say why ({reason})")
    check(live(st, others), "failure: the other sensors stay live")
    iio(True)
    st = wait_for(lambda st: live(st, attic) and st.get(attic_problem, {}).get("state") == "off", 20)
    check(live(st, attic) and st[attic_problem]["state"] == "off", "failure: the attic is back, problem off")

    # ---------------------------------------------------------------- 4. birth
    probe = f"sensor.{NODE}_room_humidity"
    publish(f"{PREFIX}/sensor/{HA_NODE}/room_humidity/config", b"", retain=True)
    st = wait_for(lambda st: probe not in st, 10)
    check(probe not in st, "birth: HA dropped the entity whose config was deleted")
    publish(f"{PREFIX}/status", "online")
    st = wait_for(lambda st: live(st, [probe]), 10)
    check(live(st, [probe]), "birth: re-announced after HA's birth message, live state restored")

    # ---------------------------------------------------------------- 5. offline
    agent.send_signal(signal.SIGTERM)
    rc = agent.wait(15)
    check(rc == 0, f"offline: agent exited cleanly (rc {rc})")
    st = wait_for(lambda st: all(st.get(e, {}).get("state") == "unavailable" for e in everything), 10)
    check(all(st.get(e, {}).get("state") == "unavailable" for e in everything),
          "offline: every entity unavailable, the problem sensors too")
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
bad, device_ids = [], set()
for line in open(spec_path, encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    eid = f"{f[0]}.{node}_{f[1]}"
    e = ents.get(eid)
    if e is None:
        bad.append(f"{eid}: not in the entity registry")
        continue
    device_ids.add(e["device_id"])
    dev = devs.get(e["device_id"], {})
    if e["platform"] != "mqtt" or e["unique_id"] != f"printmesh_{node}_sensors_{f[1]}":
        bad.append(f"{eid}: platform {e['platform']} unique_id {e['unique_id']}")
    if not e["has_entity_name"] or e["original_name"] != f[2] or f[2].lower().startswith(dev.get("name", "").lower()):
        bad.append(f"{eid}: has_entity_name {e['has_entity_name']} original_name {e['original_name']!r}")
    if (e["entity_category"] == "diagnostic") != (f[8] == "1"):
        bad.append(f"{eid}: entity_category {e['entity_category']}")
if len(device_ids) != 1:
    bad.append(f"entities spread over {len(device_ids)} devices")
else:
    dev = devs.get(next(iter(device_ids)), {})
    if dev.get("name") != node or ["mqtt", f"printmesh_{node}"] not in dev.get("identifiers", []):
        bad.append(f"device {dev.get('name')!r} {dev.get('identifiers')}")
for b in bad:
    print(f"[ha-check-sensors] FAIL  registry: {b}", file=sys.stderr)
if not bad:
    print("[ha-check-sensors] PASS  registry: one device, unique ids, names, categories", file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

log "checks: $OUT_DIR/checks.txt; HA states while live: $OUT_DIR/live_states.json"
if [ "$fail" = 0 ]; then log "OK"; exit 0; fi
[ "$rc" = 3 ] && exit 3
log "FAILED"; exit 1
