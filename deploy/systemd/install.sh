#!/usr/bin/env bash
# Install printmesh agents as systemd services on a Pi (or any Linux box) without Docker.
#
#   sudo deploy/systemd/install.sh --node enclosure-pi --broker server.lan --secrets ./secrets sensors
#   sudo deploy/systemd/install.sh --node octopi --broker server.lan camera host
#
# For each agent: the printmesh user, a venv in /opt/printmesh/venv with only the agents
# named, /etc/printmesh/printmesh.yaml (deploy/printmesh.yaml with this node id, if none yet),
# /etc/printmesh/<agent>.env (its account <node>-<agent> and the broker), its password in
# /etc/printmesh/secrets/<agent> (root, 0600; from --secrets, the folder `printmesh
# broker-config` wrote, or copy it there yourself), printmesh@.service and the agent's
# drop-in, then `systemctl enable --now printmesh@<agent>`. Run it again to add agents.
#
# --root DIR installs the files under DIR and touches nothing else (no user, no venv
# unless --venv is given and missing, no systemctl): for packaging and for the test that
# checks the result with `systemd-analyze verify`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UNITS="$REPO/deploy/systemd"
ROOT="" NODE="" BROKER="" SECRETS="" VENV="/opt/printmesh/venv" START=1
AGENTS=()

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --node) NODE="$2"; shift 2 ;;
    --broker) BROKER="$2"; shift 2 ;;
    --secrets) SECRETS="$2"; shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    --root) ROOT="$(cd "$2" && pwd)"; START=0; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) usage ;;
    host|sensors|camera|coordinator) AGENTS+=("$1"); shift ;;
    *) die "unknown argument '$1' (agents: host sensors camera coordinator; --help)" ;;
  esac
done
[ ${#AGENTS[@]} -gt 0 ] || die "name at least one agent: host, sensors, camera, coordinator"
[ -n "$NODE" ] || die "--node NODE_ID is required (the node id in the mesh: accounts are <node>-<agent>)"
[[ "$NODE" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--node '$NODE' is not a node id (letters, digits, _ . -)"
[ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (sudo), or give --root DIR"

ETC="$ROOT/etc/printmesh"
SYSTEMD="$ROOT/etc/systemd/system"

# --------------------------------------------------------------------- user and venv
if [ -z "$ROOT" ] && ! getent passwd printmesh >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin printmesh
fi
if [ ! -x "$VENV/bin/printmesh" ]; then
  packages=("$REPO/core")
  for agent in "${AGENTS[@]}"; do
    case "$agent" in
      coordinator) packages+=("$REPO/coordinator") ;;
      sensors) packages+=("$REPO/agents/sensors[dht]" "gpiod>=2.2.2,<3") ;;
      *) packages+=("$REPO/agents/$agent") ;;
    esac
  done
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "printmesh needs Python 3.11 or newer"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "${packages[@]}"
fi

# --------------------------------------------------------------------- configuration
install -d -m 0755 "$ETC"
install -d -m 0700 "$ETC/secrets"
if [ ! -e "$ETC/printmesh.yaml" ]; then
  sed "s/^node_id: .*/node_id: $NODE/" "$REPO/deploy/printmesh.yaml" > "$ETC/printmesh.yaml"
  chmod 0644 "$ETC/printmesh.yaml"
  echo "wrote $ETC/printmesh.yaml: edit the sections of the agents this machine runs"
fi
host="${BROKER%%:*}" port="${BROKER##*:}"
[ "$port" != "$BROKER" ] || port=""
for agent in "${AGENTS[@]}"; do
  {
    echo "# printmesh@$agent: its broker account (printmesh broker-config); written by install.sh"
    echo "PRINTMESH_MQTT__USERNAME=$NODE-$agent"
    [ -z "$host" ] || echo "PRINTMESH_MQTT__HOST=$host"
    [ -z "$port" ] || echo "PRINTMESH_MQTT__PORT=$port"
  } > "$ETC/$agent.env"
  chmod 0644 "$ETC/$agent.env"
  if [ -n "$SECRETS" ] && [ -e "$SECRETS/$NODE-$agent" ]; then
    install -m 0600 "$SECRETS/$NODE-$agent" "$ETC/secrets/$agent"
  fi
  [ -e "$ETC/secrets/$agent" ] || echo "install.sh: copy the password of $NODE-$agent (deploy/secrets/$NODE-$agent on the server) to $ETC/secrets/$agent (root, 0600) before starting it" >&2
done

# --------------------------------------------------------------------- units
install -d -m 0755 "$SYSTEMD"
sed "s#/opt/printmesh/venv#$VENV#g" "$UNITS/printmesh@.service" > "$SYSTEMD/printmesh@.service"
chmod 0644 "$SYSTEMD/printmesh@.service"
for agent in "${AGENTS[@]}"; do
  if [ -d "$UNITS/printmesh@$agent.service.d" ]; then
    install -d -m 0755 "$SYSTEMD/printmesh@$agent.service.d"
    install -m 0644 "$UNITS/printmesh@$agent.service.d/"*.conf "$SYSTEMD/printmesh@$agent.service.d/"
  fi
  case "$agent" in
    sensors) getent group gpio >/dev/null || echo "install.sh: no gpio group here: the dht driver needs /dev/gpiochip* readable by it (a udev rule, or drop SupplementaryGroups=gpio for linux-iio or simulated)" >&2 ;;
    camera) getent group video >/dev/null || echo "install.sh: no video group here: /dev/video* must be readable by it" >&2 ;;
  esac
done

if [ "$START" = 1 ]; then
  systemctl daemon-reload
  for agent in "${AGENTS[@]}"; do
    systemctl enable --now "printmesh@$agent.service"
    echo "started printmesh@$agent: journalctl -u printmesh@$agent -f"
  done
else
  echo "installed under ${ROOT:-/}; not started"
fi
