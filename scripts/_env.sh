# Shared by scripts/demo and scripts/test: mosquitto from apt, Python 3.11+, .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PRINTMESH_VENV_DIR:-$ROOT/.venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {  # apt_install PKG...: best effort, only where apt exists
  command -v apt-get >/dev/null || return 1
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq || true; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_mosquitto() {  # the broker of every run: from apt, as root or through sudo; no fallback
  if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    command -v mosquitto_sub >/dev/null && return 0
  fi
  echo "== installing mosquitto with apt"
  apt_install mosquitto mosquitto-clients || {
    echo "mosquitto is required: sudo apt-get install mosquitto mosquitto-clients (or brew install mosquitto)" >&2
    exit 1
  }
}

ensure_node_red() {  # Node-RED 4 and Dashboard 2.0 for examples/node-red, exactly as package-lock.json pins them
  local dir="$ROOT/examples/node-red"
  if ! command -v npm >/dev/null; then
    echo "== installing Node.js and npm with apt (the Node-RED example's test)"
    apt_install nodejs npm || { echo "the Node-RED test needs Node.js 20+ and npm: sudo apt-get install nodejs npm" >&2; exit 1; }
  fi
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.printmesh-lock"; then
    echo "== installing Node-RED and FlowFuse Dashboard 2.0 (npm ci, examples/node-red/package-lock.json)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) && cp "$dir/package-lock.json" "$dir/node_modules/.printmesh-lock"
  fi
}

find_python() {
  for py in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null || continue
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then echo "$py"; return; fi
  done
  echo "printmesh needs Python 3.11 or newer" >&2; exit 1
}

make_venv() {  # make_venv PIP_ARGS...
  local py; py="$(find_python)"
  if [ ! -x "$VENV/bin/python" ]; then
    "$py" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && "$py" -m venv "$VENV"; }
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # this machine's pip.conf names local mirrors that may be absent: keep that noise out
  (cd "$ROOT" && "$VENV/bin/python" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2))
}

make_octoprint_venv() {  # OctoPrint's own venv with the core and the bridge, as on a Pi (netifaces needs gcc)
  export OCTOPRINT_VENV="${OCTOPRINT_VENV:-$ROOT/.venv-octoprint}"
  command -v gcc >/dev/null || apt_install gcc python3-dev || true
  [ -x "$OCTOPRINT_VENV/bin/python" ] || "$(find_python)" -m venv "$OCTOPRINT_VENV"
  (cd "$ROOT" && "$OCTOPRINT_VENV/bin/python" -m pip install -q "OctoPrint>=1.11,<2" -e ./core -e ./bridge_octoprint \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2))
}
