"""``python -m printmesh_core.healthcheck``: a container's HEALTHCHECK for any printmesh process.

Healthy means connected: the container's network namespace holds an established TCP
connection to the broker's port (``PRINTMESH_MQTT__PORT``, else 1883; more ports as
arguments). It reads ``/proc/net/tcp`` and ``tcp6``, so it needs no credentials, no broker
round trip and no help from the process it checks; a process that lost the broker, or
never reached it (a wrong password closes the connection), is reported unhealthy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ESTABLISHED = "01"
DEFAULT_PORT = 1883


def established_remote_ports(table: str) -> set[int]:
    """The remote ports of the established connections in a ``/proc/net/tcp`` table."""
    ports: set[int] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != ESTABLISHED:
            continue
        _, _, port = fields[2].rpartition(":")
        try:
            ports.add(int(port, 16))
        except ValueError:
            continue
    return ports


def connected(ports: set[int], proc: Path = Path("/proc/net")) -> bool:
    seen: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            seen |= established_remote_ports((proc / name).read_text())
        except OSError:
            continue
    return bool(seen & ports)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        ports = {int(os.environ.get("PRINTMESH_MQTT__PORT") or DEFAULT_PORT), *(int(a) for a in args)}
    except ValueError:
        print("healthcheck: ports are numbers", file=sys.stderr)
        return 2
    if connected(ports):
        print(f"connected to the broker (port {', '.join(map(str, sorted(ports)))})")
        return 0
    print(f"not connected to the broker (port {', '.join(map(str, sorted(ports)))})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
