#!/usr/bin/env bash
# =============================================================================
# Shipped copy of the team's shared/tools/ha_check.sh, so that a clone on its own (CI) runs the
# Home Assistant checks; scripts/ha_check/harness.py prefers the shared one when it is there.
# ha_check.sh - run a REAL Home Assistant core headless, wired to a private
# mosquitto broker, run YOUR command that publishes MQTT discovery, then dump
# what Home Assistant made of it (GET /api/states as JSON) and tear it all down.
#
# Everything stays on 127.0.0.1 (by default inside a private network
# namespace that has only a loopback interface). Processes are stopped by the
# PIDs this script started, nothing else.
#
# ---------------------------------------------------------------------------
# ONE-TIME INSTALL (about 1 min, about 710 MB):
#   ./ha_check.sh --install          # builds $HA_VENV (default: <script dir>/venv)
#   needs: python3.11 (+venv), mosquitto and mosquitto-clients (apt), PyPI access;
#   at run time also iproute2 + util-linux (netns) and curl (selftest only).
#   Installs homeassistant==2024.3.3 (newest release that still supports
#   Python 3.11; 2024.4.0+ needs >=3.12) pinned with HA's own
#   package_constraints.txt, plus the pip requirements of every integration
#   HA loads here (frontend, http, mqtt, camera, recorder, ...), plus the fix
#   josepy<2 (acme 2.8.0, pulled in by hass-nabucasa, breaks with josepy 2.x,
#   so every HTTP request fails with a 500 error).
#
# USAGE
#   ./ha_check.sh [options] -- COMMAND [ARGS...]
#   ./ha_check.sh [options] 'shell command string'
#   ./ha_check.sh --selftest         # built-in demo: sensor + camera + button
#
# OPTIONS (each also settable as an env var)
#   -o DIR    OUT_DIR       where results go (default ./ha-check-out; replaced
#                           if empty or an earlier output, else refused)
#   -w SEC    WAIT_S        seconds to wait after COMMAND before dumping (5).
#                           With -e, the most to wait for the expected entities.
#   -e IDS    EXPECT        space-separated entity_ids. Dump as soon as all
#                           exist (or after WAIT_S). Exit 3 if any is missing.
#   -t SEC    CMD_TIMEOUT   kill COMMAND after SEC seconds (default 300)
#   -p PFX    DISCOVERY_PREFIX  MQTT discovery prefix (default homeassistant)
#   -k        KEEP=1        keep the temp work dir (config, logs) for inspection
#   -b 0|1    WAIT_BIRTH    1 (default): also wait for HA's MQTT birth message
#                           (homeassistant/status = online, ~2-3 s after
#                           "running") before COMMAND starts. See step 5.
#   -n 0|1    HA_NETNS      1 = private loopback-only network namespace (default
#                           1 when `unshare --net` works here, otherwise 0)
#   -v        HA_LOG_LEVEL=info HA_MQTT_LOG_LEVEL=debug (default warning/info)
#             HA_VENV       venv with homeassistant (default <script dir>/venv)
#             HA_START_TIMEOUT  seconds to wait for HA to be ready (default 180)
#             SETTLE_S      with -e: extra seconds after the entities appear (1)
#
# WHAT COMMAND GETS (environment)
#   BROKER_HOST=127.0.0.1  BROKER_PORT=<port>   the mosquitto broker (anonymous)
#   DISCOVERY_PREFIX       e.g. homeassistant
#   HA_URL                 http://127.0.0.1:<port>   (REST + websocket API)
#   HA_TOKEN               long-lived access token (admin user "harness")
#   HA_PYTHON              python of the HA venv (has paho-mqtt 1.6.1, aiohttp)
#   HA_OUT_DIR             the output dir (write your own artefacts there)
#   COMMAND runs on this host in the same (possibly private) network namespace,
#   so it reaches the broker at 127.0.0.1:$BROKER_PORT. Stdin is /dev/null.
#   With the private namespace (default) HA and the broker can ONLY be reached
#   from COMMAND. To poke at a live HA from another shell use -n 0, e.g.
#     ./ha_check.sh -n 0 -- sleep 600   then  . ha-check-out/env.sh; curl ...
#
# EXAMPLES
#   ./ha_check.sh --selftest
#   ./ha_check.sh -e "sensor.test_node_cpu" -w 20 -- sh -c './my_publisher --port "$BROKER_PORT"'
#   ./ha_check.sh 'my_agent --mqtt 127.0.0.1:$BROKER_PORT --once'
#   ./ha_check.sh -- "$PWD/venv/bin/python" examples/pub_paho.py
#   jq -r '.[] | [.entity_id, .state] | @tsv' ha-check-out/states.json
#
# OUTPUT (in OUT_DIR)
#   states.json           GET /api/states (sorted by entity_id)
#   registry.json         entity + device registry (websocket API): unique_id,
#                         platform, device identifiers, manufacturer, model ...
#   summary.txt           entity_id | state | friendly_name, one per line
#   ha_warnings.txt       WARNING/ERROR lines of HA's log (rejected discovery
#                         payloads show up here)
#   home-assistant.log    HA's full log;  mosquitto.log  the broker's log
#   command.log           COMMAND's stdout+stderr
#   timings.json          seconds: broker up, HA http up, HA running, MQTT
#                         discovery subscribed, command, entities present
#   env.sh                the ports/URL/token that were used
#
# EXIT CODES
#   0 ok; 2 harness failure (HA/broker did not start, see messages);
#   3 expected entity missing; otherwise COMMAND's own non-zero exit code
#   (124 = COMMAND timed out; results are still dumped); 130 interrupted.
#
# HOW IT WORKS
#   1. mosquitto in the foreground (`user root` so it keeps running as root,
#      listener on 127.0.0.1:<free port>, allow_anonymous, no persistence).
#   2. configuration.yaml: homeassistant (fixed location/tz so nothing is
#      auto-detected), http on 127.0.0.1:<free port>, api, logger. No
#      default_config. The MQTT broker cannot be set in YAML any more, so
#      .storage/core.config_entries is pre-seeded with an mqtt config entry
#      {broker 127.0.0.1, port, discovery: true, discovery_prefix}.
#   3. `hass -c CONFIG --skip-pip` (all requirements come from --install).
#      Even without default_config HA 2024.3 always loads its built-in
#      DEFAULT_INTEGRATIONS (frontend, automation, person, zone, backup, ...);
#      frontend is "critical": if it fails HA boots into recovery mode,
#      without mqtt. Hence the frontend & co. requirements in --install.
#   4. Token: POST /api/onboarding/users creates the owner (allowed once, on a
#      fresh config) -> auth_code -> POST /auth/token -> access token ->
#      websocket auth/long_lived_access_token -> 10-year token.
#   5. Ready = /api/config says state RUNNING, the mqtt config entry is
#      "loaded", and mosquitto's log shows HA's subscription to
#      <prefix>/+/+/config (HA debounces its first SUBSCRIBE by ~1 s), and
#      (WAIT_BIRTH=1) HA's birth message: before it HA delays every new
#      SUBSCRIBE (e.g. an entity's state_topic) by 1 s of quiet, after it by
#      0.1 s, so a non-retained state sent right after discovery can be lost
#      before birth. Real HA behaves the same; -b 0 lets you test that.
#      Discovery payloads are best published retained (-r): they then also
#      reach an HA that subscribes later, e.g. after a restart.
#   6. COMMAND, then wait, then dump, then SIGTERM HA (up to 30 s, then
#      SIGKILL) and mosquitto, by PID; temp dir removed unless -k.
# =============================================================================
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
HA_VERSION="${HA_VERSION:-2024.3.3}"
HA_VENV="${HA_VENV:-$SCRIPT_DIR/venv}"
OUT_DIR="${OUT_DIR:-$PWD/ha-check-out}"
WAIT_S="${WAIT_S:-5}"
EXPECT="${EXPECT:-}"
CMD_TIMEOUT="${CMD_TIMEOUT:-300}"
DISCOVERY_PREFIX="${DISCOVERY_PREFIX:-homeassistant}"
KEEP="${KEEP:-0}"
HA_NETNS="${HA_NETNS:-auto}"
HA_LOG_LEVEL="${HA_LOG_LEVEL:-warning}"
HA_MQTT_LOG_LEVEL="${HA_MQTT_LOG_LEVEL:-info}"
HA_START_TIMEOUT="${HA_START_TIMEOUT:-180}"
WAIT_BIRTH="${WAIT_BIRTH:-1}"
SETTLE_S="${SETTLE_S:-1}"

log() { printf '[ha_check %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ----------------------------------------------------------------------------
# --install: build the venv
# ----------------------------------------------------------------------------
do_install() {
  local py="${PYTHON:-python3}"
  "$py" -c 'import sys; assert sys.version_info[:2] >= (3, 11), sys.version' \
    || die "need python >= 3.11"
  command -v mosquitto >/dev/null || log "WARNING: mosquitto not found (apt-get install mosquitto mosquitto-clients)"
  command -v mosquitto_pub >/dev/null || log "WARNING: mosquitto_pub not found (apt-get install mosquitto-clients)"
  local t0=$SECONDS
  log "creating venv $HA_VENV"
  "$py" -m venv "$HA_VENV"
  local pip=("$HA_VENV/bin/python" -m pip)
  "${pip[@]}" install -q --upgrade pip wheel
  local tmp; tmp="$(mktemp -d)"
  log "fetching homeassistant==$HA_VERSION to read its package_constraints.txt"
  "${pip[@]}" download -q --no-deps -d "$tmp" "homeassistant==$HA_VERSION"
  "$HA_VENV/bin/python" - "$tmp" <<'PYEOF'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/homeassistant-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("homeassistant/package_constraints.txt")
open(sys.argv[1] + "/constraints.txt", "wb").write(data)
PYEOF
  log "installing homeassistant==$HA_VERSION (pinned by its constraints)"
  "${pip[@]}" install -q -c "$tmp/constraints.txt" "homeassistant==$HA_VERSION"
  log "resolving requirements of the integrations HA will load"
  "$HA_VENV/bin/python" - api http mqtt camera button sensor > "$tmp/reqs.txt" <<'PYEOF'
# Walk installed manifests: default/bootstrap integrations + the ones we use,
# following dependencies and after_dependencies (what HA itself would install).
import json, pathlib, sys
import homeassistant, homeassistant.bootstrap as b
comp = pathlib.Path(homeassistant.__file__).parent / "components"
todo = set(sys.argv[1:]) | b.CORE_INTEGRATIONS | b.LOGGING_INTEGRATIONS \
    | b.FRONTEND_INTEGRATIONS | b.DEFAULT_INTEGRATIONS
seen, reqs = set(), set()
while todo:
    d = todo.pop()
    if d in seen:
        continue
    seen.add(d)
    mf = comp / d / "manifest.json"
    if not mf.exists():
        continue
    m = json.loads(mf.read_text())
    reqs.update(m.get("requirements", []))
    todo |= set(m.get("dependencies", [])) | set(m.get("after_dependencies", []))
print("\n".join(sorted(reqs)))
PYEOF
  log "component requirements: $(tr '\n' ' ' < "$tmp/reqs.txt")"
  "${pip[@]}" install -q -c "$tmp/constraints.txt" -r "$tmp/reqs.txt"
  if ! "$HA_VENV/bin/python" -c 'import hass_nabucasa' 2>/dev/null; then
    log "hass_nabucasa import fails (acme vs josepy>=2); pinning josepy<2"
    "${pip[@]}" install -q -c "$tmp/constraints.txt" 'josepy<2'
    "$HA_VENV/bin/python" -c 'import hass_nabucasa' || die "hass_nabucasa still broken"
  fi
  "${pip[@]}" check || log "WARNING: pip check reports conflicts (see above)"
  rm -rf "$tmp"
  log "installed $("$HA_VENV/bin/hass" --version) in $((SECONDS - t0)) s; venv size $(du -sh "$HA_VENV" | cut -f1)"
}

# ----------------------------------------------------------------------------
# argument parsing
# ----------------------------------------------------------------------------
SELFTEST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --install) do_install; exit 0 ;;
    --selftest) SELFTEST=1; shift ;;
    -o) OUT_DIR="$2"; shift 2 ;;
    -w) WAIT_S="$2"; shift 2 ;;
    -e) EXPECT="$2"; shift 2 ;;
    -t) CMD_TIMEOUT="$2"; shift 2 ;;
    -p) DISCOVERY_PREFIX="$2"; shift 2 ;;
    -k) KEEP=1; shift ;;
    -b) WAIT_BIRTH="$2"; shift 2 ;;
    -n) HA_NETNS="$2"; shift 2 ;;
    -v) HA_LOG_LEVEL=info; HA_MQTT_LOG_LEVEL=debug; shift ;;
    -h|--help) sed -n '2,/^# =====/p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
USER_CMD=("$@")
if [ "$SELFTEST" = 1 ]; then
  USER_CMD=(__selftest__)
  [ -n "$EXPECT" ] || EXPECT="sensor.test_node_cpu camera.test_node_snapshot button.test_node_reboot"
fi
[ ${#USER_CMD[@]} -gt 0 ] || die "no command given (see --help)"

# ----------------------------------------------------------------------------
# private network namespace: re-exec this script inside `unshare --net`
# ----------------------------------------------------------------------------
if [ "${HA_CHECK_IN_NETNS:-0}" != 1 ]; then
  if [ "$HA_NETNS" = auto ]; then
    if unshare --net true 2>/dev/null; then HA_NETNS=1; else HA_NETNS=0; fi
  fi
  if [ "$HA_NETNS" = 1 ]; then
    command -v ip >/dev/null || die "HA_NETNS=1 needs the ip command (iproute2)"
    export HA_VERSION HA_VENV OUT_DIR WAIT_S EXPECT CMD_TIMEOUT DISCOVERY_PREFIX \
      KEEP HA_LOG_LEVEL HA_MQTT_LOG_LEVEL HA_START_TIMEOUT SELFTEST WAIT_BIRTH SETTLE_S
    export HA_NETNS=1 HA_CHECK_IN_NETNS=1
    if [ "$SELFTEST" = 1 ]; then REEXEC=(--selftest); else REEXEC=(-- "${USER_CMD[@]}"); fi
    # unshare execs bash (no fork), so PIDs started inside are ordinary host PIDs
    exec unshare --net -- bash -c 'ip link set lo up && exec bash "$@"' _ \
      "$SCRIPT_PATH" "${REEXEC[@]}"
  fi
fi
case "$HA_NETNS" in 0|1) ;; *) die "HA_NETNS must be 0, 1 or auto" ;; esac

# ----------------------------------------------------------------------------
# preflight
# ----------------------------------------------------------------------------
PY="$HA_VENV/bin/python"
[ -x "$HA_VENV/bin/hass" ] || die "no HA in $HA_VENV; run: $SCRIPT_PATH --install"
command -v mosquitto >/dev/null || die "mosquitto not installed (apt-get install mosquitto)"
case "$WAIT_S$CMD_TIMEOUT$HA_START_TIMEOUT$SETTLE_S" in *[!0-9.]*) die "WAIT_S/CMD_TIMEOUT/HA_START_TIMEOUT/SETTLE_S must be numbers";; esac

# OUT_DIR is replaced, so only ever delete an empty dir or an earlier output
if [ -d "$OUT_DIR" ] && [ -n "$(ls -A "$OUT_DIR")" ] && [ ! -f "$OUT_DIR/.ha_check_out" ]; then
  die "OUT_DIR $OUT_DIR exists, is not empty and is not an earlier ha_check output; refusing to replace it"
fi
rm -rf "$OUT_DIR"; mkdir -p "$OUT_DIR"; : > "$OUT_DIR/.ha_check_out"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
WORK="$(mktemp -d -t ha-check.XXXXXX)"
CONF="$WORK/config"
mkdir -p "$CONF/.storage"

MOSQ_PID=""; HASS_PID=""; CMD_PID=""; BIRTH_PID=""; HELPER_PID=""
stop_pid() {  # stop_pid PID NAME GRACE_S
  local pid="$1" name="$2" grace="$3" i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for ${grace}s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$HELPER_PID" helper 2
  stop_pid "$BIRTH_PID" birth-watcher 2
  stop_pid "$CMD_PID" command 5
  stop_pid "$HASS_PID" "Home Assistant" 30
  stop_pid "$MOSQ_PID" mosquitto 5
  # keep the logs even when something failed
  [ -f "$CONF/home-assistant.log" ] && cp "$CONF/home-assistant.log" "$OUT_DIR/" 2>/dev/null || true
  [ -f "$WORK/mosquitto.log" ] && cp "$WORK/mosquitto.log" "$OUT_DIR/" 2>/dev/null || true
  if [ -f "$OUT_DIR/home-assistant.log" ]; then
    grep -E '^[0-9-]+ [0-9:.]+ (WARNING|ERROR|CRITICAL)' "$OUT_DIR/home-assistant.log" \
      | grep -v -e 'Skipping pip installation' -e 'running Python version 3.11' -e 'source address detection may be inaccurate' \
      > "$OUT_DIR/ha_warnings.txt" || true
  fi
  if [ "$KEEP" = 1 ]; then log "kept work dir $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ----------------------------------------------------------------------------
# helper (python, runs in the HA venv: aiohttp is there)
# ----------------------------------------------------------------------------
cat > "$WORK/helper.py" <<'PYEOF'
"""ha_check helper: freeport | token URL T | wait-running URL TOKEN T |
wait-entities URL TOKEN T ID... | dump URL TOKEN OUTDIR |
wait-message HOST PORT TOPIC PAYLOAD T"""
import asyncio, json, os, socket, sys, time
import aiohttp


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


async def token(base, timeout):
    deadline, client_id = time.monotonic() + timeout, base + "/"
    async with aiohttp.ClientSession() as s:
        while True:  # HTTP server + onboarding view up?
            try:
                async with s.get(f"{base}/api/onboarding") as r:
                    if r.status == 200:
                        steps = await r.json()
                        break
                    last = f"HTTP {r.status}: {(await r.text())[:200]}"
            except aiohttp.ClientError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                sys.exit(f"timeout waiting for {base}/api/onboarding ({last})")
            await asyncio.sleep(0.2)
        if any(st["step"] == "user" and st["done"] for st in steps):
            sys.exit("owner user already exists: config dir is not fresh")
        async with s.post(f"{base}/api/onboarding/users", json={
                "client_id": client_id, "name": "Harness", "username": "harness",
                "password": "harness-password", "language": "en"}) as r:
            if r.status != 200:
                sys.exit(f"onboarding/users: {r.status} {await r.text()}")
            code = (await r.json())["auth_code"]
        async with s.post(f"{base}/auth/token", data={
                "grant_type": "authorization_code", "code": code,
                "client_id": client_id}) as r:
            if r.status != 200:
                sys.exit(f"auth/token: {r.status} {await r.text()}")
            access = (await r.json())["access_token"]
        result = await ws_call(s, base, access, {
            "type": "auth/long_lived_access_token",
            "client_name": "ha_check", "lifespan": 3650})
        print(result)


async def ws_call(s, base, tok, *msgs):
    out = []
    async with s.ws_connect(f"{base}/api/websocket", max_msg_size=0) as ws:
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": tok})
        m = await ws.receive_json()
        if m["type"] != "auth_ok":
            sys.exit(f"websocket auth failed: {m}")
        for i, msg in enumerate(msgs, 1):
            await ws.send_json({"id": i, **msg})
            while True:
                m = await ws.receive_json()
                if m.get("id") == i and m["type"] == "result":
                    break
            if not m.get("success"):
                sys.exit(f"websocket {msg['type']} failed: {m}")
            out.append(m["result"])
    return out[0] if len(out) == 1 else out


async def get_json(s, base, tok, path):
    async with s.get(f"{base}{path}",
                     headers={"Authorization": f"Bearer {tok}"}) as r:
        r.raise_for_status()
        return await r.json()


async def wait_running(base, tok, timeout):
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                cfg = await get_json(s, base, tok, "/api/config")
                entries = await get_json(
                    s, base, tok, "/api/config/config_entries/entry?domain=mqtt")
                st = [e["state"] for e in entries]
                if cfg["state"] == "RUNNING" and st == ["loaded"]:
                    print(cfg["version"])
                    return
                last = f"core={cfg['state']} mqtt_entry={st}"
            except aiohttp.ClientError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                sys.exit(f"HA not ready after {timeout}s: {last}")
            await asyncio.sleep(0.2)


async def wait_entities(base, tok, timeout, ids):
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            have = {st["entity_id"] for st in await get_json(s, base, tok, "/api/states")}
            missing = [i for i in ids if i not in have]
            if not missing or time.monotonic() > deadline:
                print(" ".join(missing))
                return
            await asyncio.sleep(0.1)


async def dump(base, tok, outdir):
    async with aiohttp.ClientSession() as s:
        states = sorted(await get_json(s, base, tok, "/api/states"),
                        key=lambda x: x["entity_id"])
        ents, devs = await ws_call(s, base, tok,
                                   {"type": "config/entity_registry/list"},
                                   {"type": "config/device_registry/list"})
    with open(os.path.join(outdir, "states.json"), "w") as f:
        json.dump(states, f, indent=2, sort_keys=True)
    with open(os.path.join(outdir, "registry.json"), "w") as f:
        json.dump({"entities": ents, "devices": devs}, f, indent=2, sort_keys=True)
    with open(os.path.join(outdir, "summary.txt"), "w") as f:
        for st in states:
            f.write(f"{st['entity_id']} | {st['state']} | "
                    f"{st['attributes'].get('friendly_name', '')}\n")
    print(len(states))


def wait_message(host, port, topic, payload, timeout):
    """Exit 0 once PAYLOAD arrives on TOPIC (used for HA's birth message)."""
    import paho.mqtt.client as mqtt
    got = []
    c = mqtt.Client(client_id=f"ha_check_birth_{os.getpid()}")
    c.on_connect = lambda cl, u, f, rc: cl.subscribe(topic)
    c.on_message = lambda cl, u, m: got.append(m.payload.decode(errors="replace"))
    c.connect(host, port)
    deadline = time.monotonic() + timeout
    while payload not in got:
        if time.monotonic() > deadline:
            sys.exit(f"no {payload!r} on {topic} within {timeout}s (got {got})")
        c.loop(timeout=0.2)
    c.disconnect()


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "freeport":
        return freeport()
    if cmd == "wait-message":
        return wait_message(a[0], int(a[1]), a[2], a[3], float(a[4]))
    if cmd == "token":
        return asyncio.run(token(a[0], float(a[1])))
    if cmd == "wait-running":
        return asyncio.run(wait_running(a[0], a[1], float(a[2])))
    if cmd == "wait-entities":
        return asyncio.run(wait_entities(a[0], a[1], float(a[2]), a[3:]))
    if cmd == "dump":
        return asyncio.run(dump(a[0], a[1], a[2]))
    sys.exit(f"unknown helper command {cmd}")


main()
PYEOF
helper() { "$PY" "$WORK/helper.py" "$@"; }
# long-running helpers run in the background + `wait`, so that a SIGINT/SIGTERM
# to this script is handled at once (bash defers traps while a foreground
# child runs). Not in $(...) (that is a subshell): its stdout is left in
# $WORK/helper.out, read it with helper_out.
helper_bg() {
  local rc=0
  "$PY" "$WORK/helper.py" "$@" > "$WORK/helper.out" &
  HELPER_PID=$!
  wait "$HELPER_PID" || rc=$?
  HELPER_PID=""
  return "$rc"
}
helper_out() { cat "$WORK/helper.out"; }

# built-in demo command (used by --selftest): sensor + camera + button
cat > "$WORK/selftest.sh" <<'SHEOF'
#!/usr/bin/env bash
# Publishes discovery for a sensor, a camera (raw JPEG bytes) and a button,
# then checks button press -> MQTT command and camera_proxy -> same bytes.
set -euo pipefail
P=(-h "$BROKER_HOST" -p "$BROKER_PORT")
AUTH="Authorization: Bearer $HA_TOKEN"
DEV='"device":{"identifiers":["testnode"],"name":"Test node","manufacturer":"ha_check","model":"selftest"}'
"$HA_PYTHON" -c "from PIL import Image; Image.new('RGB',(64,48),(200,30,30)).save('$HA_OUT_DIR/selftest.jpg','JPEG')"
t0=$(date +%s.%N)
mosquitto_pub "${P[@]}" -r -t "$DISCOVERY_PREFIX/sensor/testnode/cpu/config" -m '{"name":"CPU","unique_id":"testnode_cpu","state_topic":"test/testnode/host/state","value_template":"{{ value_json.cpu_percent }}","unit_of_measurement":"%","state_class":"measurement",'"$DEV"',"availability_topic":"test/testnode/status","payload_available":"online","payload_not_available":"offline"}'
for i in $(seq 1 1000); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$HA_URL/api/states/sensor.test_node_cpu")" = 200 ] && break
  sleep 0.01
done
t1=$(date +%s.%N)
echo "discovery publish -> sensor.test_node_cpu present: $("$HA_PYTHON" -c "print(round($t1 - $t0, 3))") s"
mosquitto_pub "${P[@]}" -r -t test/testnode/status -m online
mosquitto_pub "${P[@]}" -r -t test/testnode/host/state -m '{"cpu_percent": 12.5}'
mosquitto_pub "${P[@]}" -r -t "$DISCOVERY_PREFIX/camera/testnode/snap/config" -m '{"name":"Snapshot","unique_id":"testnode_snap","topic":"test/testnode/camera",'"$DEV"'}'
mosquitto_pub "${P[@]}" -r -t test/testnode/camera -f "$HA_OUT_DIR/selftest.jpg"
mosquitto_pub "${P[@]}" -r -t "$DISCOVERY_PREFIX/button/testnode/reboot/config" -m '{"name":"Reboot","unique_id":"testnode_reboot","command_topic":"test/testnode/cmd/reboot","payload_press":"REBOOT",'"$DEV"'}'
for i in $(seq 1 300); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$HA_URL/api/states/button.test_node_reboot")" = 200 ] \
    && [ "$(curl -s -H "$AUTH" "$HA_URL/api/states/sensor.test_node_cpu" | "$HA_PYTHON" -c 'import json,sys;print(json.load(sys.stdin)["state"])')" = 12.5 ] && break
  sleep 0.05
done
# button press -> HA publishes payload_press on command_topic
mosquitto_sub "${P[@]}" -t 'test/testnode/cmd/#' -v -C 1 -W 10 > "$HA_OUT_DIR/selftest_button.txt" & SUB=$!
sleep 0.5
curl -sf -X POST -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"entity_id":"button.test_node_reboot"}' "$HA_URL/api/services/button/press" > /dev/null
wait "$SUB" || { echo "FAIL: no MQTT command seen after button press"; exit 1; }
echo "button press -> MQTT: $(cat "$HA_OUT_DIR/selftest_button.txt")"
grep -qx 'test/testnode/cmd/reboot REBOOT' "$HA_OUT_DIR/selftest_button.txt" || { echo "FAIL: wrong command"; exit 1; }
# camera proxy returns the published bytes
curl -sf -H "$AUTH" -o "$HA_OUT_DIR/selftest_camera_proxy.jpg" "$HA_URL/api/camera_proxy/camera.test_node_snapshot"
if cmp -s "$HA_OUT_DIR/selftest.jpg" "$HA_OUT_DIR/selftest_camera_proxy.jpg"; then
  echo "camera_proxy: identical to published JPEG ($(stat -c %s "$HA_OUT_DIR/selftest.jpg") bytes, md5 $(md5sum < "$HA_OUT_DIR/selftest.jpg" | cut -c1-32))"
else
  echo "FAIL: camera_proxy bytes differ"; exit 1
fi
# availability: offline -> unavailable, online -> value back
mosquitto_pub "${P[@]}" -r -t test/testnode/status -m offline; sleep 0.5
s_off=$(curl -s -H "$AUTH" "$HA_URL/api/states/sensor.test_node_cpu" | "$HA_PYTHON" -c 'import json,sys;print(json.load(sys.stdin)["state"])')
mosquitto_pub "${P[@]}" -r -t test/testnode/status -m online; sleep 0.5
s_on=$(curl -s -H "$AUTH" "$HA_URL/api/states/sensor.test_node_cpu" | "$HA_PYTHON" -c 'import json,sys;print(json.load(sys.stdin)["state"])')
echo "availability: offline -> $s_off, online -> $s_on"
[ "$s_off" = unavailable ] && [ "$s_on" = 12.5 ] || { echo "FAIL: availability"; exit 1; }
echo "SELFTEST OK"
SHEOF
chmod +x "$WORK/selftest.sh"
if [ "${USER_CMD[0]}" = __selftest__ ]; then USER_CMD=("$WORK/selftest.sh"); fi

now() { date +%s.%N; }
since() { "$PY" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$1" "$(now)"; }

# ----------------------------------------------------------------------------
# 1. mosquitto
# ----------------------------------------------------------------------------
BROKER_HOST=127.0.0.1
BROKER_PORT="$(helper freeport)"
HTTP_PORT="$(helper freeport)"
while [ "$HTTP_PORT" = "$BROKER_PORT" ]; do HTTP_PORT="$(helper freeport)"; done
HA_URL="http://127.0.0.1:$HTTP_PORT"

cat > "$WORK/mosquitto.conf" <<EOF
# as root mosquitto would otherwise drop privileges to user "mosquitto"
user root
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest file $WORK/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
connection_messages true
log_timestamp true
EOF
T0="$(now)"
log "work dir $WORK; netns=$HA_NETNS; broker 127.0.0.1:$BROKER_PORT; HA $HA_URL"
mosquitto -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.stdout" 2>&1 < /dev/null &
MOSQ_PID=$!
for ((i = 0; i < 100; i++)); do
  kill -0 "$MOSQ_PID" 2>/dev/null || { cat "$WORK/mosquitto.stdout" "$WORK/mosquitto.log" >&2 2>/dev/null; die "mosquitto exited"; }
  grep -q ' running$' "$WORK/mosquitto.log" 2>/dev/null && break
  sleep 0.1
done
grep -q ' running$' "$WORK/mosquitto.log" 2>/dev/null || die "mosquitto did not come up"
T_BROKER="$(since "$T0")"

# ----------------------------------------------------------------------------
# 2. Home Assistant config
# ----------------------------------------------------------------------------
cat > "$CONF/configuration.yaml" <<EOF
# generated by ha_check.sh: minimal config, no default_config
homeassistant:
  name: ha-check
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en
http:
  server_host: 127.0.0.1
  server_port: $HTTP_PORT
api:
logger:
  default: $HA_LOG_LEVEL
  logs:
    homeassistant.components.mqtt: $HA_MQTT_LOG_LEVEL
EOF
# The broker is config-entry only (no YAML): pre-seed the mqtt config entry.
cat > "$CONF/.storage/core.config_entries" <<EOF
{
  "version": 1,
  "minor_version": 1,
  "key": "core.config_entries",
  "data": {
    "entries": [
      {
        "entry_id": "0123456789abcdef0123456789abcdef",
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": "127.0.0.1",
        "data": {
          "broker": "127.0.0.1",
          "port": $BROKER_PORT,
          "discovery": true,
          "discovery_prefix": "$DISCOVERY_PREFIX"
        },
        "options": {},
        "pref_disable_new_entities": false,
        "pref_disable_polling": false,
        "source": "user",
        "unique_id": null,
        "disabled_by": null
      }
    ]
  }
}
EOF

# ----------------------------------------------------------------------------
# 3. start HA, get a token, wait until running + subscribed to discovery
# ----------------------------------------------------------------------------
if [ "$WAIT_BIRTH" = 1 ]; then  # subscribe before HA can publish its birth
  # not via the helper() function: `func &` would fork a subshell and $! would
  # not be the python process
  "$PY" "$WORK/helper.py" wait-message 127.0.0.1 "$BROKER_PORT" homeassistant/status online \
    "$HA_START_TIMEOUT" > "$WORK/birth.out" 2>&1 &
  BIRTH_PID=$!
  for ((i = 0; i < 100; i++)); do grep -q ' homeassistant/status$' "$WORK/mosquitto.log" && break; sleep 0.1; done
fi
T1="$(now)"
"$HA_VENV/bin/hass" -c "$CONF" --skip-pip --log-no-color > "$WORK/hass.stdout" 2>&1 < /dev/null &
HASS_PID=$!
ha_dead() {
  kill -0 "$HASS_PID" 2>/dev/null && return 1
  log "Home Assistant exited; last log lines:"; tail -40 "$WORK/hass.stdout" >&2; return 0
}
helper_bg token "$HA_URL" "$HA_START_TIMEOUT" || { ha_dead || tail -40 "$WORK/hass.stdout" >&2; die "could not get a token"; }
HA_TOKEN="$(helper_out)"
T_HTTP="$(since "$T1")"
helper_bg wait-running "$HA_URL" "$HA_TOKEN" "$HA_START_TIMEOUT" || { ha_dead || true; die "HA not running"; }
HA_VER="$(helper_out)"
T_RUNNING="$(since "$T1")"
SUB_PAT="$DISCOVERY_PREFIX/+/+/config"
for ((i = 0; i < 600; i++)); do
  grep -qF " $SUB_PAT" "$WORK/mosquitto.log" && break
  ha_dead && die "HA died"
  sleep 0.1
done
grep -qF " $SUB_PAT" "$WORK/mosquitto.log" || die "HA never subscribed to $SUB_PAT"
T_SUBSCRIBED="$(since "$T1")"
T_BIRTH=null
if [ "$WAIT_BIRTH" = 1 ]; then
  # HA publishes its birth message (homeassistant/status = online) once it is
  # running and MQTT discovery has been quiet for 2 s; from then on it sends
  # new SUBSCRIBEs after 0.1 s instead of 1 s (steady state).
  rc=0; wait "$BIRTH_PID" || rc=$?
  BIRTH_PID=""
  [ "$rc" = 0 ] || { cat "$WORK/birth.out" >&2; ha_dead || true; die "no MQTT birth message from HA"; }
  T_BIRTH="$(since "$T1")"
fi
if [ "$T_BIRTH" = null ]; then BIRTH_TXT="not awaited"; else BIRTH_TXT="${T_BIRTH}s"; fi
log "Home Assistant $HA_VER running after ${T_RUNNING}s (http ${T_HTTP}s, discovery subscribed ${T_SUBSCRIBED}s, birth $BIRTH_TXT)"

cat > "$OUT_DIR/env.sh" <<EOF
BROKER_HOST=$BROKER_HOST
BROKER_PORT=$BROKER_PORT
DISCOVERY_PREFIX=$DISCOVERY_PREFIX
HA_URL=$HA_URL
HA_TOKEN=$HA_TOKEN
EOF

# ----------------------------------------------------------------------------
# 4. user command
# ----------------------------------------------------------------------------
export BROKER_HOST BROKER_PORT DISCOVERY_PREFIX HA_URL HA_TOKEN
export HA_PYTHON="$PY" HA_OUT_DIR="$OUT_DIR"
if [ ${#USER_CMD[@]} -eq 1 ] && [ ! -x "${USER_CMD[0]}" ] && ! command -v "${USER_CMD[0]}" >/dev/null 2>&1; then
  USER_CMD=(bash -c "${USER_CMD[0]}")   # a shell command string
fi
log "running: ${USER_CMD[*]}"
T2="$(now)"
set +e
timeout --signal=TERM --kill-after=5 "$CMD_TIMEOUT" "${USER_CMD[@]}" < /dev/null > "$OUT_DIR/command.log" 2>&1 &
CMD_PID=$!
wait "$CMD_PID"; CMD_RC=$?
set -e
CMD_PID=""
T_CMD="$(since "$T2")"
sed 's/^/  | /' "$OUT_DIR/command.log" >&2
log "command exited $CMD_RC after ${T_CMD}s"
[ "$CMD_RC" = 124 ] && log "command TIMED OUT after ${CMD_TIMEOUT}s"

# ----------------------------------------------------------------------------
# 5. wait, dump
# ----------------------------------------------------------------------------
MISSING=""
T_ENT=null
if [ -n "$EXPECT" ]; then
  # shellcheck disable=SC2086
  helper_bg wait-entities "$HA_URL" "$HA_TOKEN" "$WAIT_S" $EXPECT || die "wait-entities failed"
  MISSING="$(helper_out)"
  T_ENT="$(since "$T2")"
  sleep "$SETTLE_S" & wait $!   # let state messages that follow discovery land
else
  sleep "$WAIT_S" & wait $!
fi
N="$(helper dump "$HA_URL" "$HA_TOKEN" "$OUT_DIR")" || die "dump failed"
cat > "$OUT_DIR/timings.json" <<EOF
{"ha_version": "$HA_VER", "netns": $HA_NETNS,
 "broker_up_s": $T_BROKER, "ha_http_up_s": $T_HTTP, "ha_running_s": $T_RUNNING,
 "ha_discovery_subscribed_s": $T_SUBSCRIBED, "ha_birth_s": $T_BIRTH, "command_s": $T_CMD,
 "command_start_to_expected_entities_s": $T_ENT, "command_rc": $CMD_RC}
EOF
log "dumped $N states to $OUT_DIR/states.json"
sed 's/^/  /' "$OUT_DIR/summary.txt" >&2

if [ "$CMD_RC" != 0 ]; then exit "$CMD_RC"; fi
if [ -n "$MISSING" ]; then log "MISSING entities after ${WAIT_S}s: $MISSING"; exit 3; fi
exit 0
