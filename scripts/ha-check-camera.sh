#!/usr/bin/env bash
# =============================================================================
# ha-check-camera.sh - run the printmesh camera agent against a REAL Home
# Assistant (core 2024.3, headless, private mosquitto; via ha_check.sh) and check
# what HA makes of its MQTT discovery.
#
#   scripts/ha-check-camera.sh [-o OUT_DIR] [-k]
#
# Cameras (all synthetic, so no hardware is needed):
#   bed     preview every 1 s          -> camera, button, last-capture sensor
#   nozzle  preview every 1 s, with an offline flag file (simulated unplug)
#   side    previews off               -> button and sensor only, no camera entity
#
# What it checks (inside ha_check, while the agent runs):
#   1. live    every expected entity exists and is available; cameras are "idle";
#              device_class timestamp on the sensors; friendly names "<node> <name>";
#              HA's camera proxy serves the preview (a 640x360 JPEG); no unexpected
#              discovery config of ours.
#   2. press   button.press twice through HA's API: two captures with distinct ids
#              (a constant id would be de-duplicated), images on their topics with
#              the right size and sha256; the last-capture sensor shows the time of
#              the latest one and its sha256 as attribute. A JSON capture request
#              from MQTT (as the coordinator sends it) updates the sensor too.
#   3. junk    non-JSON and an empty message on the last-capture topic: the sensor
#              keeps its timestamp and HA logs nothing (see 7).
#   4. unplug  the nozzle camera's flag file appears: its camera and button turn
#              unavailable, its sensor stays, bed is unaffected; flag removed: back.
#   5. birth   one discovery config deleted (HA drops the entity), then HA's birth
#              message: the agent re-announces and the entity comes back.
#   6. offline SIGTERM: every entity unavailable.
#   After ha_check:
#   7. HA's log has no WARNING/ERROR line about mqtt, templates, printmesh or our
#      entities.
#   8. registry: one device named after the node, unique ids
#      printmesh_<node>_camera_<object_id>, has_entity_name, original names.
#
# Exit status: 0 all good; 1 a check failed; 2 harness/setup failure; 3 entities missing.
#
# Environment:
#   HA_VENV    HA venv (default /work/ha-venv); installed on first use if absent
#   HA_CHECK   path of ha_check.sh (default /work/shared/tools/ha_check.sh)
#   PRINTMESH  printmesh executable (default <repo>/.venv/bin/printmesh)
#   NODE       node id (default octopi); OUT_DIR (default ${TMPDIR:-/tmp}/ha-check-camera-out)
# =============================================================================
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HA_VENV="${HA_VENV:-/work/ha-venv}"
HA_CHECK="${HA_CHECK:-/work/shared/tools/ha_check.sh}"
PRINTMESH="${PRINTMESH:-$REPO/.venv/bin/printmesh}"
NODE="${NODE:-octopi}"
OUT_DIR="${OUT_DIR:-${TMPDIR:-/tmp}/ha-check-camera-out}"
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
log() { printf '[ha-check-camera] %s\n' "$*" >&2; }

[ -x "$HA_CHECK" ] || { log "ha_check.sh not found at $HA_CHECK (set HA_CHECK)"; exit 2; }
[ -x "$PRINTMESH" ] || { log "printmesh not found at $PRINTMESH (set PRINTMESH)"; exit 2; }
case "$NODE" in *[!a-z0-9_-]*|"") log "NODE must be lowercase letters, digits, _ or -"; exit 2 ;; esac
if [ ! -x "$HA_VENV/bin/hass" ]; then
  log "no Home Assistant in $HA_VENV: installing (about 1 min, ~710 MB)"
  HA_VENV="$HA_VENV" "$HA_CHECK" --install || { log "install failed"; exit 2; }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ha-check-camera.XXXXXX")"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

cat > "$WORK/camera.yaml" <<EOF
camera:
  cameras:
    - name: bed
      title: Bed
      source: {type: synthetic, fps: 10}
      preview: {interval: 1}
    - name: nozzle
      title: Nozzle
      source: {type: synthetic, fps: 5, offline_flag: $WORK/unplugged}
      preview: {interval: 1}
      reopen: {min_delay: 0.5, max_delay: 1}
    - name: side
      title: Side
      source: {type: synthetic, fps: 0}
      preview: {interval: 0}
EOF

# entity_id suffix (after <platform>.<node>_) -> platform, original name, device_class
cat > "$WORK/spec.tsv" <<'EOF'
camera	bed	Bed	-
button	bed_capture	Bed capture	-
sensor	bed_last_capture	Bed last capture	timestamp
camera	nozzle	Nozzle	-
button	nozzle_capture	Nozzle capture	-
sensor	nozzle_last_capture	Nozzle last capture	timestamp
button	side_capture	Side capture	-
sensor	side_last_capture	Side last capture	timestamp
EOF
EXPECT="$(awk -F'\t' -v n="$NODE" '{ printf "%s.%s_%s ", $1, n, $2 }' "$WORK/spec.tsv")"

cat > "$WORK/checker.py" <<'PYEOF'
"""Phases 1-6 (see ha-check-camera.sh). Writes checks.txt and live_states.json to $HA_OUT_DIR."""
import hashlib, io, json, os, signal, subprocess, sys, time, urllib.request
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
from PIL import Image

WORK, PRINTMESH, NODE = sys.argv[1:4]
OUT, URL, TOKEN = os.environ["HA_OUT_DIR"], os.environ["HA_URL"], os.environ["HA_TOKEN"]
BROKER, PORT, PREFIX = os.environ["BROKER_HOST"], int(os.environ["BROKER_PORT"]), os.environ["DISCOVERY_PREFIX"]
BASE = f"printmesh/{NODE}/camera"
HA_NODE = f"printmesh_{NODE}_camera"
results = []


def check(ok, what):
    results.append(("PASS" if ok else "FAIL", what))
    print(("PASS  " if ok else "FAIL  ") + what, flush=True)
    return ok


def api(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method="GET" if body is None else "POST",
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def states():
    return {s["entity_id"]: s for s in json.loads(api("/api/states")[2])}


def wait_for(pred, timeout, step=0.25):
    end = time.monotonic() + timeout
    while True:
        st = states()
        if pred(st) or time.monotonic() > end:
            return st
        time.sleep(step)


def iso(value):
    try:
        ts = datetime.fromisoformat(value)
        return ts if ts.tzinfo is not None else None
    except (TypeError, ValueError):
        return None


spec = {}
for line in open(os.path.join(WORK, "spec.tsv"), encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    spec[f"{f[0]}.{NODE}_{f[1]}"] = dict(platform=f[0], object_id=f[1], name=f[2], device_class=f[3])
ids = list(spec)

configs, seen = {}, []
client = mqtt.Client(client_id="ha-check-camera")


def on_message(c, u, m):
    if m.topic.endswith("/config"):
        configs[m.topic] = m.payload
    else:
        seen.append((m.topic, m.payload))


client.on_message = on_message
client.connect(BROKER, PORT)
client.loop_start()
client.subscribe([(f"{PREFIX}/+/{HA_NODE}/+/config", 1), (f"{BASE}/res/capture", 1), (f"{BASE}/+/capture/+", 1)])


def publish(topic, payload, retain=False):
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish()


def responses():
    return [json.loads(p) for t, p in list(seen) if t == f"{BASE}/res/capture"]


def image_on(topic):
    return next((p for t, p in list(seen) if t == topic), None)


def available(st, eids):
    return all(e in st and st[e]["state"] != "unavailable" for e in eids)


env = dict(os.environ, PRINTMESH_MQTT__HOST=BROKER, PRINTMESH_MQTT__PORT=str(PORT), PRINTMESH_NODE_ID=NODE,
           PRINTMESH_DISCOVERY__PREFIX=PREFIX)
agent_log = open(os.path.join(OUT, "agent.log"), "w")
agent = subprocess.Popen([PRINTMESH, "camera", "-c", os.path.join(WORK, "camera.yaml")], env=env,
                         stdout=agent_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
try:
    # ------------------------------------------------------------------ 1. live
    cams = [e for e in ids if e.startswith("camera.")]
    st = wait_for(lambda st: available(st, ids) and all(st[c]["state"] == "idle" for c in cams), 40)
    json.dump(sorted(st.values(), key=lambda s: s["entity_id"]), open(os.path.join(OUT, "live_states.json"), "w"),
              indent=1, ensure_ascii=False)
    for eid, s in spec.items():
        if not check(eid in st, f"live: {eid} exists"):
            continue
        state, attrs = st[eid]["state"], st[eid]["attributes"]
        check(state != "unavailable", f"live: {eid} available ({state})")
        want = None if s["device_class"] == "-" else s["device_class"]
        check(attrs.get("device_class") == want, f"live: {eid} device_class {attrs.get('device_class')!r} == {want!r}")
        check(attrs.get("friendly_name") == f"{NODE} {s['name']}", f"live: {eid} friendly name "
                                                                    f"{attrs.get('friendly_name')!r}")
        if s["platform"] == "camera":
            check(state == "idle", f"live: {eid} is idle")
    status, ctype, body = api(f"/api/camera_proxy/camera.{NODE}_bed")
    size = Image.open(io.BytesIO(body)).size if body[:2] == b"\xff\xd8" else None
    check(status == 200 and ctype.startswith("image/jpeg") and size == (640, 360),
          f"live: HA's camera proxy serves the preview as JPEG ({status} {ctype} {size})")
    check(f"camera.{NODE}_side" not in st, "live: no camera entity for the camera with previews off")
    ours = {t for t, p in configs.items() if p}
    wanted = {f"{PREFIX}/{s['platform']}/{HA_NODE}/{s['object_id']}/config" for s in spec.values()}
    check(ours == wanted, f"live: retained discovery configs == expected (extra {sorted(ours - wanted)}, "
                          f"missing {sorted(wanted - ours)})")

    # ------------------------------------------------------------------ 2. press
    button, sensor = f"button.{NODE}_bed_capture", f"sensor.{NODE}_bed_last_capture"
    pressed_at = datetime.now(timezone.utc)
    for _ in range(2):
        api("/api/services/button/press", {"entity_id": button})
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while len(responses()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    got = responses()
    check(len(got) == 2 and all(r["ok"] for r in got), f"press: two presses, two answered captures ({len(got)})")
    check(len({r["id"] for r in got}) == 2 and all(r["id"].startswith("press-") for r in got),
          f"press: a fresh id per press ({[r['id'] for r in got]})")
    for r in got:
        img = image_on(r["data"]["topic"]) if r["ok"] else None
        check(img is not None and len(img) == r["data"]["size"] and hashlib.sha256(img).hexdigest() == r["data"]["sha256"],
              f"press: image on {r['data']['topic'] if r['ok'] else '?'} matches size and sha256")
    latest = got[-1]["data"] if got and got[-1]["ok"] else {}
    st = wait_for(lambda st: st.get(sensor, {}).get("attributes", {}).get("sha256") == latest.get("sha256"), 10)
    when = iso(st.get(sensor, {}).get("state"))
    check(when is not None and abs((when - pressed_at).total_seconds()) < 10,
          f"press: {sensor} = time of the last capture ({st.get(sensor, {}).get('state')})")
    check(st.get(sensor, {}).get("attributes", {}).get("sha256") == latest.get("sha256"),
          f"press: {sensor} carries the capture's metadata as attributes")
    check(st.get(button, {}).get("state") not in ("unknown", "unavailable"), f"press: {button} remembers the press")
    publish(f"{BASE}/cmd/capture", json.dumps({"id": "coordinator-1", "camera": "bed", "label": "layer 3 grid 1/4"}))
    st = wait_for(lambda st: st.get(sensor, {}).get("attributes", {}).get("label") == "layer 3 grid 1/4", 10)
    check(st.get(sensor, {}).get("attributes", {}).get("capture_id") == "coordinator-1",
          "press: a capture requested over MQTT updates the sensor too")
    before = st[sensor]["state"]

    # ------------------------------------------------------------------ 3. junk
    publish(f"{BASE}/bed/last_capture", "not json")
    publish(f"{BASE}/bed/last_capture", b"")
    time.sleep(1.5)
    check(states()[sensor]["state"] == before, "junk: non-JSON and empty messages keep the timestamp")

    # ------------------------------------------------------------------ 4. unplug
    flag = os.path.join(WORK, "unplugged")
    open(flag, "w").close()
    gone = [f"camera.{NODE}_nozzle", f"button.{NODE}_nozzle_capture"]
    st = wait_for(lambda st: all(st.get(e, {}).get("state") == "unavailable" for e in gone), 10)
    check(all(st.get(e, {}).get("state") == "unavailable" for e in gone), "unplug: nozzle camera and button unavailable")
    check(st.get(f"sensor.{NODE}_nozzle_last_capture", {}).get("state") != "unavailable",
          "unplug: nozzle last-capture sensor stays available")
    check(st.get(f"camera.{NODE}_bed", {}).get("state") == "idle", "unplug: bed unaffected")
    os.remove(flag)
    st = wait_for(lambda st: all(st.get(e, {}).get("state") not in ("unavailable", None) for e in gone), 10)
    check(available(st, gone), "unplug: back when the camera returns")

    # ------------------------------------------------------------------ 5. birth
    probe = f"camera.{NODE}_bed"
    publish(f"{PREFIX}/camera/{HA_NODE}/bed/config", b"", retain=True)
    st = wait_for(lambda st: probe not in st, 10)
    check(probe not in st, "birth: HA dropped the entity whose config was deleted")
    publish(f"{PREFIX}/status", "online")
    st = wait_for(lambda st: st.get(probe, {}).get("state") == "idle", 10)
    check(st.get(probe, {}).get("state") == "idle", "birth: re-announced after HA's birth message")

    # ------------------------------------------------------------------ 6. offline
    agent.send_signal(signal.SIGTERM)
    rc = agent.wait(15)
    check(rc == 0, f"offline: agent exited cleanly (rc {rc})")
    st = wait_for(lambda st: all(st.get(e, {}).get("state") == "unavailable" for e in ids), 10)
    check(all(st.get(e, {}).get("state") == "unavailable" for e in ids), "offline: every entity unavailable")
finally:
    if agent.poll() is None:
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

# --- 7. HA's log
fail=0
[ "$rc" = 0 ] || { log "ha_check/checker exit status $rc (see $OUT_DIR/command.log, checks.txt)"; fail=1; }
PATTERN="mqtt|template|printmesh|${NODE}_|/${NODE}/|camera\\.|button\\.|sensor\\."
if grep -Ei "$PATTERN" "$OUT_DIR/ha_warnings.txt" > "$OUT_DIR/our_warnings.txt"; then
  log "Home Assistant logged warnings/errors about us:"; sed 's/^/  /' "$OUT_DIR/our_warnings.txt" >&2; fail=1
else
  log "PASS  HA log: no warning/error about mqtt, templates or our entities"
fi
if grep -Eiv "$PATTERN" "$OUT_DIR/ha_warnings.txt" | grep -q .; then
  log "other HA warnings (not counted):"; grep -Eiv "$PATTERN" "$OUT_DIR/ha_warnings.txt" | sed 's/^/  /' >&2
fi

# --- 8. registry
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
    if e["platform"] != "mqtt" or e["unique_id"] != f"printmesh_{node}_camera_{f[1]}":
        bad.append(f"{eid}: platform {e['platform']} unique_id {e['unique_id']}")
    if not e["has_entity_name"] or e["original_name"] != f[2]:
        bad.append(f"{eid}: has_entity_name {e['has_entity_name']} original_name {e['original_name']!r}")
if len(device_ids) != 1:
    bad.append(f"entities spread over {len(device_ids)} devices")
else:
    dev = devs.get(next(iter(device_ids)), {})
    if dev.get("name") != node or ["mqtt", f"printmesh_{node}"] not in dev.get("identifiers", []):
        bad.append(f"device {dev.get('name')!r} {dev.get('identifiers')}")
for b in bad:
    print(f"[ha-check-camera] FAIL  registry: {b}", file=sys.stderr)
if not bad:
    print("[ha-check-camera] PASS  registry: one device, unique ids, names", file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

log "checks: $OUT_DIR/checks.txt; HA states while live: $OUT_DIR/live_states.json; entities: $OUT_DIR/summary.txt"
if [ "$fail" = 0 ]; then log "OK"; exit 0; fi
[ "$rc" = 3 ] && exit 3
log "FAILED"; exit 1
