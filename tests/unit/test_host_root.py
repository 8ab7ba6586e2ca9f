"""The host agent in a container reports the host: /proc, /sys and mounts read below ``host.root``.

compose.yaml mounts the host's / (and its /proc and /sys) read-only at /host and sets
``host.root: /host``; here a folder stands for that mount, with a meminfo of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from printmesh_core.config import ConfigError, load_settings
from printmesh_host.config import HostConfig, HostSettings
from printmesh_host.metrics import Sampler


@pytest.fixture
def procfs() -> Iterator[None]:
    saved = psutil.PROCFS_PATH
    yield
    psutil.PROCFS_PATH = saved


def test_the_sysfs_defaults_follow_root_and_explicit_paths_stay():
    c = HostConfig.model_validate({"root": "/host"})
    assert c.proc_path == Path("/host/proc")
    assert c.thermal_path == Path("/host/sys/class/thermal")
    assert c.throttled_path == Path("/host/sys/devices/platform/soc/soc:firmware/get_throttled")
    assert HostConfig().thermal_path == Path("/sys/class/thermal") and HostConfig().proc_path == Path("/proc")
    mine = HostConfig.model_validate({"root": "/host", "thermal_path": "/elsewhere"})
    assert mine.thermal_path == Path("/elsewhere")


def test_a_relative_root_is_refused_with_its_key(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("host: {root: host}\n")
    with pytest.raises(ConfigError, match=r"host\.root: must be an absolute path"):
        load_settings(HostSettings, tmp_path / "c.yaml")


def test_memory_and_storage_come_from_below_root(tmp_path: Path, procfs: None):
    (tmp_path / "proc").mkdir()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    fake = [("MemTotal:        4242424 kB" if line.startswith("MemTotal:") else line) for line in meminfo]
    (tmp_path / "proc" / "meminfo").write_text("\n".join(fake) + "\n")
    for name in ("stat", "uptime", "swaps", "vmstat"):
        if Path(f"/proc/{name}").exists():
            shutil.copy(f"/proc/{name}", tmp_path / "proc" / name)
    (tmp_path / "data").mkdir()
    config = HostConfig.model_validate({"root": str(tmp_path), "mounts": ["/", "/data", "/missing"]})
    state = Sampler(config).sample()
    assert state.memory is not None and state.memory.total == 4242424 * 1024, "the host's meminfo, not ours"
    assert state.storage is not None and set(state.storage) == {"/", "/data"}, "named as the host names them"
