"""Host agent payloads."""

from __future__ import annotations

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Payload, Seconds, Timestamp
from printmesh_core.models.envelope import CommandRequest


class _Part(BaseModel):
    model_config = PART


class Cpu(_Part):
    percent: float = Field(description="Total CPU use since the previous sample, %.")
    per_core: list[float] = Field(description="Per-core CPU use, %.")
    count: int


class Load(_Part):
    load1: float
    load5: float
    load15: float


class Temperature(_Part):
    celsius: float
    source: str = Field(description="Where it was read: 'psutil:<chip>', 'sysfs:<zone> (<type>)' or 'vcgencmd'.")


class Frequency(_Part):
    current_mhz: float
    min_mhz: float | None = None
    max_mhz: float | None = None


class Memory(_Part):
    total: int = Field(description="Bytes.")
    used: int
    available: int
    percent: float


class Swap(_Part):
    total: int = Field(description="Bytes.")
    used: int
    free: int
    percent: float


class Storage(_Part):
    total: int = Field(description="Bytes.")
    used: int
    free: int
    percent: float


class Uptime(_Part):
    seconds: Seconds
    boot_time: Timestamp = Field(description="Unix seconds.")


class Throttling(_Part):
    """Decoded ``vcgencmd get_throttled`` bits (Raspberry Pi)."""

    raw: str
    under_voltage_now: bool
    freq_capped_now: bool
    throttled_now: bool
    soft_temp_limit_now: bool
    under_voltage_occurred: bool
    freq_capped_occurred: bool
    throttled_occurred: bool
    soft_temp_limit_occurred: bool


class HostState(Payload):
    """Retained on ``<node>/host/state``. A metric that is off or unavailable is null."""

    cpu: Cpu | None = None
    load: Load | None = None
    temperature: Temperature | None = None
    frequency: Frequency | None = None
    memory: Memory | None = None
    swap: Swap | None = None
    storage: dict[str, Storage] | None = Field(default=None, description="Keyed by mount point.")
    uptime: Uptime | None = None
    throttling: Throttling | None = None
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="Metrics switched on that this host cannot provide, with the reason."
    )


class ShellResult(Payload):
    """Retained on ``<node>/host/command/<name>``: one run of a shell command from the local config."""

    name: str
    exit_code: int | None = Field(description="Null when the command could not start or timed out.")
    stdout: str
    stderr: str
    truncated: bool = Field(description="stdout or stderr was cut at the configured limit.")
    duration: Seconds = Field(description="Seconds.")
    timed_out: bool
    error: str | None = Field(default=None, description="Why it did not run or finish, if so.")


class RefreshRequest(CommandRequest):
    """``<node>/host/cmd/refresh``: sample now, publish, and return the state."""
