#!/usr/bin/env bash
# =============================================================================
# ha-check-printer.sh - run a real `octoprint serve` (virtual printer) with the
# printmesh plugin against a REAL Home Assistant (core 2024.3, headless, private
# mosquitto; via ha_check.sh) and check what HA makes of the printer's MQTT
# discovery.
#
#   scripts/ha-check-printer.sh [-o OUT_DIR] [-k] [-m auto|plugin|driver]
#
# Discovery (-m): "plugin" expects the plugin to announce its own configs;
# "driver" announces them from scripts/_ha_printer.py through the core's
# DiscoveryPublisher and the same entity builder (octoprint_printmesh.entities),
# while the plugin publishes the real states and serves the commands; "auto"
# (default) uses the plugin's configs when they appear, else the driver's.
#
# What it checks (scripts/_ha_printer.py, inside ha_check):
#   1. idle    every expected entity exists with the right friendly name, unit,
#              device_class and state_class; state "Operational", connected on,
#              printing off, live temperatures; ETA, file and the buttons are
#              unavailable without a job; no unexpected discovery config.
#   2. print   a 20-layer print with layer markers, a dwell per layer and the
#              fan at 50 %: printing on, file name, progress, print time (left),
#              the ETA as a timestamp with a zone, layer, total layers, height,
#              last layer duration, fan 50.2 %, pause/cancel available.
#   3. buttons pause, resume, pause, resume pressed through HA's API: the printer
#              follows each press, four answers with four distinct request ids
#              (a constant id would be de-duplicated); cancel ends the print.
#   4. junk    non-JSON, {}, a list and null on every state topic: numbers go
#              unknown, ETA/file unavailable, no log line in HA (see 7).
#   5. birth   one config deleted, then HA's birth message: it comes back.
#   6. offline OctoPrint stopped: every entity unavailable.
#   After ha_check:
#   7. HA's log has no WARNING/ERROR line about mqtt, templates, printmesh or our
#      entities; expected entities are missing -> ha_check exits 3.
#   8. registry: one device named after the node, unique ids
#      printmesh_<node>_printer_<object_id>, has_entity_name, original names.
#
# Exit status: 0 all good; 1 a check failed; 2 harness/setup failure; 3 entities missing.
#
# Environment:
#   HA_VENV    HA venv (default /work/ha-venv); installed on first use if absent
#   HA_CHECK   path of ha_check.sh (default /work/shared/tools/ha_check.sh)
#   PYTHON     python with printmesh and the bridge (default <repo>/.venv/bin/python)
#   OCTOPRINT_VENV  OctoPrint's venv (default <repo>/.venv-octoprint, see scripts/test)
#   NODE       node id (default octopi); OUT_DIR (default ${TMPDIR:-/tmp}/ha-check-printer-out)
# =============================================================================
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HA_VENV="${HA_VENV:-/work/ha-venv}"
HA_CHECK="${HA_CHECK:-/work/shared/tools/ha_check.sh}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
NODE="${NODE:-octopi}"
OUT_DIR="${OUT_DIR:-${TMPDIR:-/tmp}/ha-check-printer-out}"
MODE=auto
KEEP=0

usage() { sed -n '2,/^# =====/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//; /^=====/d'; }
while [ $# -gt 0 ]; do
  case "$1" in
    -o) OUT_DIR="$2"; shift 2 ;;
    -k) KEEP=1; shift ;;
    -m) MODE="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { printf '[ha-check-printer] %s\n' "$*" >&2; }

[ -x "$HA_CHECK" ] || { log "ha_check.sh not found at $HA_CHECK (set HA_CHECK)"; exit 2; }
[ -x "$PYTHON" ] || { log "python not found at $PYTHON (set PYTHON, or run scripts/test once)"; exit 2; }
[ -x "${OCTOPRINT_VENV:-$REPO/.venv-octoprint}/bin/octoprint" ] || {
  log "no OctoPrint in ${OCTOPRINT_VENV:-$REPO/.venv-octoprint} (run scripts/test once)"; exit 2; }
case "$NODE" in *[!A-Za-z0-9_-]*|"") log "NODE must be letters, digits, _ or -"; exit 2 ;; esac
case "$MODE" in auto|plugin|driver) ;; *) log "-m must be auto, plugin or driver"; exit 2 ;; esac
if [ ! -x "$HA_VENV/bin/hass" ]; then
  log "no Home Assistant in $HA_VENV: installing (about 1 min, ~710 MB)"
  HA_VENV="$HA_VENV" "$HA_CHECK" --install || { log "install failed"; exit 2; }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ha-check-printer.XXXXXX")"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

EXPECT="$("$PYTHON" "$REPO/scripts/_ha_printer.py" expect "$NODE")"
log "expected: $EXPECT"
rc=0
# shellcheck disable=SC2016  # the positional parameters are expanded by sh inside ha_check
HA_VENV="$HA_VENV" KEEP="$KEEP" "$HA_CHECK" -o "$OUT_DIR" -w 20 -t 400 -e "$EXPECT" -- \
  sh -c '"$1" "$2" run "$3" "$4" "$5"' driver "$PYTHON" "$REPO/scripts/_ha_printer.py" "$WORK" "$NODE" "$MODE" || rc=$?
if [ "$rc" = 2 ] || [ ! -f "$OUT_DIR/states.json" ]; then log "ha_check failed (rc $rc)"; exit 2; fi

# --- 7. HA's log
fail=0
[ "$rc" = 0 ] || { log "ha_check/driver exit status $rc (see $OUT_DIR/command.log, checks.txt)"; fail=1; }
PATTERN="mqtt|template|printmesh|${NODE}_|/${NODE}/|sensor\\.|binary_sensor\\.|button\\."
if grep -Ei "$PATTERN" "$OUT_DIR/ha_warnings.txt" > "$OUT_DIR/our_warnings.txt"; then
  log "Home Assistant logged warnings/errors about us:"; sed 's/^/  /' "$OUT_DIR/our_warnings.txt" >&2; fail=1
else
  log "PASS  HA log: no warning/error about mqtt, templates or our entities"
fi
if grep -Eiv "$PATTERN" "$OUT_DIR/ha_warnings.txt" | grep -q .; then
  log "other HA warnings (not counted):"; grep -Eiv "$PATTERN" "$OUT_DIR/ha_warnings.txt" | sed 's/^/  /' >&2
fi

# --- 8. registry
"$PYTHON" "$REPO/scripts/_ha_printer.py" registry "$OUT_DIR/registry.json" "$NODE" || fail=1

log "checks: $OUT_DIR/checks.txt; discovery: $(grep -m1 '^discovery:' "$OUT_DIR/command.log" || echo '?')"
if [ "$fail" = 0 ]; then log "OK"; exit 0; fi
[ "$rc" = 3 ] && exit 3
log "FAILED"; exit 1
