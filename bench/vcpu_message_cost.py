"""What one small message to another CPU costs a busy process on this machine.

Why: every plugin arm of bridge_throughput.py that sends costs OctoPrint's own threads more CPU
per line, and with the broker down the plugin costs nothing. This isolates the mechanism without
OctoPrint: a process pinned to one CPU ping-pongs between two threads through queues (the comm
path's shape) for ``--seconds``, while a third thread sends a 120-byte TCP message every
``--gap`` seconds (the bench print's layer rate) to an echo server. Arms, interleaved over
``--rounds``; the median rate of each against no sending, side by side:

* ``none``      no sending
* ``other``     the server pinned to the other CPU, answering each message (QoS 1's PUBACK)
* ``one_way``   ... not answering (QoS 0)
* ``same``      the server pinned to the busy process's CPU
* ``batched``   the other CPU, the same messages ten at a time every ten gaps

    .venv/bin/python bench/vcpu_message_cost.py [--rounds 5] [--seconds 3] [--gap 0.023]
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ARMS = {"none": None, "other": (0, True, 1), "one_way": (0, False, 1), "same": (1, True, 1), "batched": (0, True, 10)}


def serve(port_file: str, cpu: int, reply: bool) -> None:
    os.sched_setaffinity(0, {cpu})
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    Path(port_file).write_text(str(server.getsockname()[1]))
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while conn.recv(4096):
        if reply:
            conn.sendall(b"ack!")


def busy(seconds: float, port: int | None, gap: float, burst: int, reply: bool) -> tuple[float, float]:
    """Iterations per second of the ping-pong, and CPU µs per iteration, while messages go out."""
    there: queue.Queue[int | None] = queue.Queue()
    back: queue.Queue[int] = queue.Queue()
    stop = threading.Event()

    def echo() -> None:
        while (x := there.get()) is not None:
            sum(range(200))
            back.put(x)

    def send(sock: socket.socket) -> None:
        while not stop.wait(gap * burst):
            for _ in range(burst):
                sock.sendall(b"x" * 120)
            if reply:
                sock.recv(64)

    threads = [threading.Thread(target=echo)]
    sock = None
    if port is not None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threads.append(threading.Thread(target=send, args=(sock,)))
    for t in threads:
        t.start()
    n, t0, c0 = 0, time.monotonic(), time.process_time()
    while time.monotonic() - t0 < seconds:
        sum(range(200))
        there.put(n)
        back.get()
        n += 1
    rate, cpu = n / (time.monotonic() - t0), (time.process_time() - c0) / n * 1e6
    stop.set()
    there.put(None)
    for t in threads:
        t.join()
    if sock is not None:
        sock.close()
    return rate, cpu


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--gap", type=float, default=0.023)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs")
    os.sched_setaffinity(0, {1})
    results: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm, spec in ARMS.items():
            child, port, burst, reply = None, None, 1, True
            if spec is not None:
                cpu, reply, burst = spec
                port_file = Path(f"/tmp/vcpu-message-cost-{os.getpid()}-{r}-{arm}")
                child = subprocess.Popen([sys.executable, __file__, "serve", str(port_file), str(cpu), str(int(reply))])
                while not (port_file.exists() and port_file.read_text()):
                    time.sleep(0.02)
                port = int(port_file.read_text())
                port_file.unlink()
            time.sleep(0.3)
            rate, cpu_us = busy(args.seconds, port, args.gap, burst, reply)
            if child is not None:
                child.kill()
                child.wait()
            results[arm].append((rate, cpu_us))
            print(f"# round {r + 1} {arm:8s} {rate:8.0f} it/s {cpu_us:6.2f} CPU us/it", flush=True)
    base = statistics.median(rate for rate, _ in results["none"])
    base_cpu = statistics.median(cpu for _, cpu in results["none"])
    print(f"{'arm':8s}  rate / none  CPU per iteration / none   (message every {args.gap * 1e3:.0f} ms)")
    for arm, values in results.items():
        rate = statistics.median(r for r, _ in values) / base
        cpu = statistics.median(c for _, c in values) / base_cpu
        print(f"{arm:8s}  {rate:11.3f}  {cpu:24.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
