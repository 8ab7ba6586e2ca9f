"""Host agent settings (the ``host:`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from printmesh_core.config import AgentSettings, Strict, check_unique
from printmesh_core.topics import TopicError, check_segment

DEFAULT_TEMPERATURE_CHIPS = [
    "cpu_thermal", "cpu-thermal", "soc_thermal", "coretemp", "k10temp", "zenpower",
    "cpu", "scpi_sensors", "sunxi-therm-1", "sunxi-therm-2", "acpitz",
]  # fmt: skip


class Metrics(Strict):
    """Each metric can be switched off; its Home Assistant entity is then removed."""

    cpu: bool = True
    load: bool = True
    temperature: bool = True
    frequency: bool = True
    memory: bool = True
    swap: bool = True
    storage: bool = True
    uptime: bool = True
    throttling: bool = True


class ShellCommand(Strict):
    """A command from the local config only; MQTT can never add or change one."""

    name: str = Field(description="Topic segment: host/command/<name>.")
    argv: list[str] | None = Field(
        default=None, min_length=1, description="Program and arguments, run without a shell."
    )
    command: str | None = Field(default=None, description="A shell command line; needs shell: true.")
    shell: bool = Field(default=False, description="Run `command` through /bin/sh. Off unless set explicitly.")
    interval: float = Field(default=60.0, ge=1, le=86400, description="Seconds between runs.")
    timeout: float = Field(default=10.0, gt=0, le=3600, description="Seconds before the command is killed.")
    max_output: int = Field(default=4096, ge=16, le=262144, description="Bytes of stdout/stderr kept.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_segment(value, "command name")
        except TopicError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_form(self) -> ShellCommand:
        if self.shell and (self.command is None or self.argv is not None):
            raise ValueError("with shell: true, set `command` (a string) and not `argv`")
        if not self.shell and (self.argv is None or self.command is not None):
            raise ValueError("set `argv` (a list); a `command` string needs shell: true")
        return self


class HostConfig(Strict):
    interval: float = Field(default=10.0, ge=0.5, le=3600, description="Seconds between metric samples.")
    root: Path = Field(
        default=Path("/"),
        description="Where the host's / is seen (in a container: /host, mounted read-only): /proc, /sys and "
        "the mounts are read below it, so the agent reports the host, not its container.",
    )
    metrics: Metrics = Metrics()
    mounts: list[str] = Field(default_factory=lambda: ["/"], description="Mount points reported under storage.")
    temperature_chips: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TEMPERATURE_CHIPS), description="psutil sensor names, tried in order."
    )
    thermal_path: Path = Field(default=Path("/sys/class/thermal"), description="sysfs thermal zones (fallback).")
    vcgencmd: str = Field(default="vcgencmd", description="Raspberry Pi firmware tool, for temperature and throttling.")
    throttled_path: Path = Field(
        default=Path("/sys/devices/platform/soc/soc:firmware/get_throttled"),
        description="Pi firmware sysfs file with the throttling flags; read before falling back to vcgencmd.",
    )
    commands: list[ShellCommand] = Field(default_factory=list)

    @field_validator("mounts")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for mount in value:
            if not mount.startswith("/"):
                raise ValueError(f"mount point must be an absolute path: {mount!r}")
        return value

    @field_validator("root")
    @classmethod
    def _absolute_root(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path: {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _below_root(self) -> HostConfig:
        """The sysfs defaults follow ``root``; paths set explicitly are taken as they are."""
        for name in ("thermal_path", "throttled_path"):
            if name not in self.model_fields_set:
                default = type(self).model_fields[name].default
                object.__setattr__(self, name, self.on_host(str(default)))
        return self

    def on_host(self, path: str) -> Path:
        """A path of the host as this process sees it: ``/proc`` → ``<root>/proc``."""
        return self.root / path.lstrip("/")

    @property
    def proc_path(self) -> Path:
        return self.on_host("/proc")

    @field_validator("commands")
    @classmethod
    def _unique(cls, value: list[ShellCommand]) -> list[ShellCommand]:
        check_unique([c.name for c in value], "command")
        return value


class HostSettings(AgentSettings):
    host: HostConfig = HostConfig()
