"""The images' HEALTHCHECK: established connections to the broker's port, read from /proc/net/tcp."""

from __future__ import annotations

from pathlib import Path

from printmesh_core.healthcheck import connected, established_remote_ports

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:A3F0 0100007F:075B 01 00000000:00000000 00:00000000 00000000  1000        0 2 1
   2: 0100007F:A3F2 0100007F:22B3 06 00000000:00000000 00:00000000 00000000  1000        0 3 1
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:B000 00000000000000000000000001000000:22B3 01 0 0
"""


def test_only_established_connections_count():
    assert established_remote_ports(TCP) == {1883}, "the listener (0A) and a TIME_WAIT (06) do not count"
    assert established_remote_ports(TCP6) == {8883}
    assert established_remote_ports("header only\n") == set()


def test_connected_reads_both_tables(tmp_path: Path):
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    assert connected({1883}, tmp_path) and connected({8883}, tmp_path)
    assert not connected({1884}, tmp_path)
    assert not connected({1883}, tmp_path / "missing")
