#!/usr/bin/env bash
# Checks that printmesh-core + printmesh-octoprint install cleanly into OctoPrint's own venv.
#
#   scripts/check-octoprint-venv.sh [--no-serve] [VENV_DIR]
#   scripts/check-octoprint-venv.sh --compare BEFORE.json AFTER.json
#
# 1. Creates a fresh venv (VENV_DIR must not exist or be empty; default: a temp dir that is
#    removed again on success) and installs "OctoPrint>=1.11,<2" into it.
# 2. Records `pip freeze` and `pip list --format=json`, then installs ./core ./bridge_octoprint
#    from the repo root and records again.
# 3. Runs `pip check`, prints every version change of a pre-existing package (must be none),
#    the packages that were added (must be a subset of the expected ones) and the before/after
#    versions of psutil and packaging (must be equal).
# 4. Verifies plugin discovery: the `octoprint.plugin` entry point group has `printmesh` and
#    `octoprint_printmesh` imports in that venv.
# 5. Unless --no-serve: starts OctoPrint headless on a free 127.0.0.1 port with a scratch basedir,
#    waits (at most SERVE_TIMEOUT seconds, default 60) for octoprint.log to list printmesh as a
#    third-party plugin and to show its startup line, then stops it with SIGTERM.
#
# --compare runs only step 3's comparison on two `pip list --format=json` files (no installs).
# Exits non-zero if any check fails. Records and logs stay in VENV_DIR/printmesh-check/.
#
# Environment: PYTHON (default python3), OCTOPRINT_SPEC (default "OctoPrint>=1.11,<2"),
# SERVE_TIMEOUT (default 60).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
OCTOPRINT_SPEC=${OCTOPRINT_SPEC:-"OctoPrint>=1.11,<2"}
SERVE_TIMEOUT=${SERVE_TIMEOUT:-60}
WATCHED="psutil packaging"
# Packages `pip install ./core ./bridge_octoprint` may add on top of OctoPrint: ours, and the
# only core dependency OctoPrint does not already bring (pydantic and PyYAML come with it).
EXPECTED_NEW="printmesh-core printmesh-octoprint paho-mqtt"

# Compares two `pip list --format=json` files; prints a report and exits 1 on any violation.
compare() {
    WATCHED="$WATCHED" EXPECTED_NEW="$EXPECTED_NEW" "$PYTHON" - "$1" "$2" <<'PY'
import json
import os
import re
import sys


def load(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh)
    return {re.sub(r"[-_.]+", "-", row["name"]).lower(): row["version"] for row in rows}


before, after = load(sys.argv[1]), load(sys.argv[2])
watched = os.environ["WATCHED"].split()
expected_new = set(os.environ["EXPECTED_NEW"].split())
problems: list[str] = []

changed = sorted(name for name in before if name in after and before[name] != after[name])
print("== version changes of pre-existing packages (must be none) ==")
for name in changed:
    print(f"  CHANGED {name}: {before[name]} -> {after[name]}")
    problems.append(f"{name} changed {before[name]} -> {after[name]}")
if not changed:
    print("  (none)")

removed = sorted(set(before) - set(after))
print("== packages removed (must be none) ==")
for name in removed:
    print(f"  REMOVED {name} {before[name]}")
    problems.append(f"{name} {before[name]} was removed")
if not removed:
    print("  (none)")

added = sorted(set(after) - set(before))
print(f"== packages added (allowed: {', '.join(sorted(expected_new))}) ==")
for name in added:
    ok = name in expected_new
    print(f"  {'added' if ok else 'UNEXPECTED'} {name} {after[name]}")
    if not ok:
        problems.append(f"unexpected new package {name} {after[name]}")
if not added:
    print("  (none)")

print("== watched packages ==")
for name in watched:
    old, new = before.get(name, "MISSING"), after.get(name, "MISSING")
    same = old == new and old != "MISSING"
    print(f"  {name}: before={old} after={new} {'unchanged' if same else 'CHANGED'}")
    if not same and not (name in before and name in after):
        problems.append(f"watched package {name} missing (before={old} after={new})")

for problem in problems:
    print(f"PROBLEM: {problem}")
sys.exit(1 if problems else 0)
PY
}

if [[ ${1:-} == --compare ]]; then
    [[ $# -eq 3 ]] || { echo "usage: $0 --compare BEFORE.json AFTER.json" >&2; exit 2; }
    compare "$2" "$3"
    exit $?
fi

SERVE=1
if [[ ${1:-} == --no-serve ]]; then
    SERVE=0
    shift
fi
[[ $# -le 1 ]] || { echo "usage: $0 [--no-serve] [VENV_DIR]" >&2; exit 2; }

TEMP_ROOT=""
if [[ $# -eq 1 ]]; then
    VENV=$1
    if [[ -e $VENV && -n $(ls -A "$VENV") ]]; then
        echo "error: $VENV exists and is not empty; the check needs a fresh venv" >&2
        exit 2
    fi
else
    TEMP_ROOT=$(mktemp -d -t printmesh-octoprint-venv.XXXXXX)
    VENV=$TEMP_ROOT/venv
fi

START=$SECONDS
FAILURES=()
SERVER_PID=""

cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step() { printf '\n### [%4ss] %s\n' "$((SECONDS - START))" "$*"; }

# Runs a command with its output in a log file; on failure shows the log's tail and exits.
logged() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "FAILED: $* (log: $log)" >&2
        grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -40 >&2
        exit 1
    fi
}

step "creating venv $VENV with $("$PYTHON" --version)"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
WORK=$VENV/printmesh-check
mkdir -p "$WORK"

step "pip install \"$OCTOPRINT_SPEC\""
logged "$WORK/pip-install-octoprint.log" "${PIP[@]}" install "$OCTOPRINT_SPEC"
"$VENV/bin/octoprint" --version

record() {
    "${PIP[@]}" freeze --all >"$WORK/freeze-$1.txt"
    "${PIP[@]}" list --format=json >"$WORK/list-$1.json"
    echo "recorded $(wc -l <"$WORK/freeze-$1.txt") distributions in $WORK/freeze-$1.txt"
    for name in $WATCHED; do
        echo "  $1: $name $("$VENV/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name" 2>/dev/null || echo MISSING)"
    done
}
record before

step "pip install ./core ./bridge_octoprint (from $REPO_ROOT)"
(cd "$REPO_ROOT" && logged "$WORK/pip-install-printmesh.log" "${PIP[@]}" install ./core ./bridge_octoprint)
grep -E "^Successfully installed" "$WORK/pip-install-printmesh.log" || true
record after

step "pip check"
if "${PIP[@]}" check >"$WORK/pip-check.txt" 2>&1; then
    cat "$WORK/pip-check.txt"
else
    cat "$WORK/pip-check.txt"
    FAILURES+=("pip check failed")
fi

step "before/after comparison"
if ! compare "$WORK/list-before.json" "$WORK/list-after.json"; then
    FAILURES+=("the install changed OctoPrint's venv (see PROBLEM lines above)")
fi

step "plugin discovery in OctoPrint's venv"
if ! "$VENV/bin/python" - <<'PY'
import importlib.metadata

eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="octoprint.plugin")}
print(f"octoprint.plugin entry points: {eps}")
assert eps.get("printmesh") == "octoprint_printmesh", "no printmesh entry point"

import octoprint_printmesh  # noqa: E402
import printmesh_core  # noqa: E402

print(
    f"imported octoprint_printmesh (__plugin_name__={octoprint_printmesh.__plugin_name__!r}, "
    f"implementation={type(octoprint_printmesh.__plugin_implementation__).__name__}) "
    f"with printmesh_core {printmesh_core.__version__}"
)
PY
then
    FAILURES+=("plugin discovery/import failed")
fi

if [[ $SERVE -eq 1 ]]; then
    step "headless OctoPrint loads the plugin (timeout ${SERVE_TIMEOUT}s)"
    BASEDIR=$WORK/octoprint-basedir
    mkdir -p "$BASEDIR"
    # No first-run wizard, and the bundled plugins that call the internet are disabled.
    cat >"$BASEDIR/config.yaml" <<'YAML'
server:
  firstRun: false
  onlineCheck: {enabled: false}
  pluginBlacklist: {enabled: false}
  seenWizards: {corewizard: 4, classicwebcam: 1, backup: null, tracking: null, file_check: 1}
plugins:
  _disabled: [announcements, tracking, errortracking, softwareupdate,
              discovery, pi_support, health_check, pluginmanager]
YAML
    PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    LOG=$BASEDIR/logs/octoprint.log
    "$VENV/bin/octoprint" serve --iknowwhatimdoing --basedir "$BASEDIR" --host 127.0.0.1 --port "$PORT" \
        >"$WORK/octoprint-serve.out" 2>&1 &
    SERVER_PID=$!
    loaded=0
    deadline=$((SECONDS + SERVE_TIMEOUT))
    while ((SECONDS < deadline)); do
        if grep -q "octoprint.plugins.printmesh - INFO - printmesh plugin .* started" "$LOG" 2>/dev/null; then
            loaded=1
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.5
    done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    if [[ $loaded -eq 1 ]] && grep -qE '^\|   printmesh \(' "$LOG"; then
        grep -E '^\| Third Party Plugins|^\|   printmesh \(|octoprint.plugins.printmesh' "$LOG"
    else
        echo "OctoPrint did not load the plugin within ${SERVE_TIMEOUT}s; tail of $LOG:"
        tail -40 "$LOG" 2>/dev/null || tail -40 "$WORK/octoprint-serve.out"
        FAILURES+=("headless OctoPrint did not load the printmesh plugin")
    fi
fi

step "done in $((SECONDS - START))s"
if ((${#FAILURES[@]})); then
    for failure in "${FAILURES[@]}"; do
        echo "FAIL: $failure"
    done
    echo "records and logs kept in $WORK"
    exit 1
fi
echo "OK: OctoPrint's venv is unchanged apart from the expected additions, and OctoPrint loads printmesh"
if [[ -n $TEMP_ROOT ]]; then
    rm -rf "$TEMP_ROOT"
else
    echo "records and logs in $WORK"
fi
