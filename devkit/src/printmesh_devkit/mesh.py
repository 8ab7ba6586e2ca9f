"""The mesh description ``printmesh broker-config`` reads: nodes, their components, who reads.

What a coordinator may command is not written here a second time: a node's ``config`` names
that node's own printmesh config file, and the coordinator's printers and cameras are read
from its ``coordinator.printers`` section (likewise the camera names, and whether discovery is
on). Only without such a file are a coordinator's printers listed inline. The OctoPrint bridge
(component ``printer``) keeps its settings inside OctoPrint, so it has no file here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from printmesh_core.config import ConfigError, Strict, format_validation_error, read_yaml
from printmesh_core.topics import TopicError, check_node_id, check_segment

Component = Literal["host", "sensors", "camera", "printer", "coordinator"]
PRINTER_BUTTONS = ("pause", "resume", "cancel")  # the bridge's Home Assistant buttons


def _level(value: str, what: str) -> str:
    try:
        return check_segment(value, what)
    except TopicError as exc:
        raise ValueError(str(exc)) from None


class CameraRef(Strict):
    node: str
    camera: str


class PrinterRef(Strict):
    """One printer a coordinator serves, and the cameras it captures it with."""

    node: str
    cameras: list[CameraRef] = Field(default_factory=list)


class NodeSpec(Strict):
    components: list[Component] = Field(min_length=1, description="The printmesh processes on this node.")
    config: Path | None = Field(default=None, description="This node's printmesh config (relative to the mesh file).")
    printers: list[PrinterRef] | None = Field(default=None, description="The coordinator's printers, without config.")


class TlsListener(Strict):
    cafile: str
    certfile: str
    keyfile: str
    require_certificate: bool = False


class Listener(Strict):
    port: int = Field(ge=1, le=65535)
    address: str | None = Field(default=None, description="Bind address; all interfaces when unset.")
    tls: TlsListener | None = None


class BrokerSpec(Strict):
    listeners: list[Listener] = Field(default_factory=lambda: [Listener(port=1883)], min_length=1)
    config_dir: str | None = Field(default=None, description="The output folder as the broker sees it.")
    persistence: bool = True
    persistence_location: str = "/mosquitto/data/"


class HomeAssistant(Strict):
    user: str = "homeassistant"
    buttons: list[str] = Field(default_factory=list, description="<node>/camera/<camera>, <node>/printer/pause...")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return _level(value, "user name")


class Mesh(Strict):
    topic_root: str = "printmesh"
    discovery_prefix: str = "homeassistant"
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    dashboard: str | None = Field(default="dashboard", description="The read-only user; null: none.")
    home_assistant: HomeAssistant | None = None
    broker: BrokerSpec = BrokerSpec()

    @field_validator("nodes")
    @classmethod
    def _node_ids(cls, value: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        for node in value:
            try:
                check_node_id(node)
            except TopicError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("topic_root", "discovery_prefix")
    @classmethod
    def _levels(cls, value: str) -> str:
        for level in value.split("/"):
            _level(level, "topic level")
        return value

    @field_validator("dashboard")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        return None if value is None else _level(value, "user name")

    @model_validator(mode="after")
    def _coordinators_know_their_printers(self) -> Mesh:
        for node, spec in self.nodes.items():
            if spec.printers is not None and "coordinator" not in spec.components:
                raise ValueError(f"nodes.{node}.printers: only a coordinator node lists printers")
            if spec.printers is not None and spec.config is not None:
                raise ValueError(f"nodes.{node}: give printers or config (its coordinator.printers), not both")
        return self


class NodeFacts(BaseModel):
    """What the ACL needs of one node, after reading its config file."""

    node: str
    components: list[Component]
    printers: list[PrinterRef]
    cameras: list[str] | None  # None: not known (no config file); any camera of this node
    discovery: bool


def _section(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data


def _printer(raw: dict[str, Any]) -> PrinterRef:
    """The node and cameras of one ``coordinator.printers`` entry; the rest is the coordinator's."""
    cameras = [{"node": c.get("node"), "camera": c.get("camera")} for c in raw.get("cameras") or []]
    return PrinterRef.model_validate({"node": raw.get("node"), "cameras": cameras})


def node_facts(node: str, spec: NodeSpec, base: Path) -> NodeFacts:
    """Read a node's own config (raw: its component validates it) for what the ACL needs."""
    if spec.config is None:
        return NodeFacts(node=node, components=spec.components, printers=spec.printers or [], cameras=None,
                         discovery=True)  # fmt: skip
    path = spec.config if spec.config.is_absolute() else base / spec.config
    data = read_yaml(path)
    if data.get("node_id", node) != node:
        raise ConfigError(f"nodes.{node}.config: {path} says node_id {data['node_id']!r}")
    printers: list[PrinterRef] = []
    if "coordinator" in spec.components:
        try:
            raw = _section(data, "coordinator", "printers") or []
            printers = [_printer(p) for p in raw]
        except (ValidationError, AttributeError) as exc:
            raise ConfigError(f"nodes.{node}.config: {path}: coordinator.printers is not a list of printers") from exc
    cams = _section(data, "camera", "cameras")
    cameras = [c["name"] for c in cams if isinstance(c, dict) and "name" in c] if isinstance(cams, list) else None
    discovery = _section(data, "discovery", "enabled")
    return NodeFacts(node=node, components=spec.components, printers=printers, cameras=cameras,
                     discovery=discovery is not False)  # fmt: skip


def load_mesh(path: Path) -> tuple[Mesh, list[NodeFacts]]:
    """The mesh and every node's facts, or a ConfigError naming the key."""
    try:
        mesh = Mesh.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None
    facts = [node_facts(node, spec, path.parent) for node, spec in mesh.nodes.items()]
    check_references(mesh, {f.node: f for f in facts})
    return mesh, facts


def check_references(mesh: Mesh, facts: dict[str, NodeFacts]) -> None:
    """Every printer, camera and button named must exist in the mesh."""

    def camera(where: str, node: str, name: str) -> None:
        f = facts.get(node)
        if f is None or "camera" not in f.components:
            raise ConfigError(f"{where}: no camera component on node {node!r} in the mesh")
        if f.cameras is not None and name not in f.cameras:
            raise ConfigError(f"{where}: node {node!r} has no camera {name!r} (it has {', '.join(f.cameras)})")

    for f in facts.values():
        for p in f.printers:
            if p.node not in facts or "printer" not in facts[p.node].components:
                raise ConfigError(f"nodes.{f.node}: coordinator printer {p.node!r} is not a printer node of the mesh")
            for c in p.cameras:
                camera(f"nodes.{f.node}: printer {p.node}", c.node, c.camera)
    for button in mesh.home_assistant.buttons if mesh.home_assistant else []:
        where = f"home_assistant.buttons: {button!r}"
        parts = button.split("/")
        if len(parts) != 3 or parts[1] not in ("camera", "printer"):
            raise ConfigError(f"{where}: use <node>/camera/<camera> or <node>/printer/<{'|'.join(PRINTER_BUTTONS)}>")
        node, kind, name = parts
        if kind == "camera":
            camera(where, node, name)
        elif node not in facts or "printer" not in facts[node].components or name not in PRINTER_BUTTONS:
            raise ConfigError(f"{where}: no printer on node {node!r}, or not one of {', '.join(PRINTER_BUTTONS)}")
