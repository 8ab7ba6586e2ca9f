"""Who may read and write what: one broker account per component of each node, plus readers.

Pure: the mesh in, accounts and mosquitto ACL text out; every topic comes from
``printmesh_core.topics``. The rules, per kind of account:

* every account reads its own reply namespace, ``<root>/reply/<user>/#`` (one ``pattern``);
* a component (agent, bridge, coordinator) reads and writes its own subtree
  ``<root>/<node>/<component>/#`` (its status, state, commands and answers), writes answers to
  MQTT 5 requests only below ``<root>/reply/+/<node>/<component>``, and, when it announces
  Home Assistant entities, its own discovery configs and reads Home Assistant's birth;
* a bridge also reads the status of the coordinators configured for its printer (the holders
  it trusts: their last will releases its hold);
* a coordinator reads its printers' and cameras' topics, writes only their ``hold``, ``move``,
  ``release`` and ``capture`` commands, and reads every coordinator's status (share groups);
* the dashboard user reads everything under the root and the discovery prefix, writes nothing;
* Home Assistant reads the same, writes its birth and the command topics of its buttons.

Nobody else writes a printer's commands or fakes its ``held`` or ``status``: mosquitto drops an
unauthorised publish (MQTT 3.1.1) or refuses it with a reason code (MQTT 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from printmesh_core import contract
from printmesh_core.topics import DiscoveryTopics, Topics, join, reply_writes
from printmesh_devkit.mesh import Mesh, NodeFacts

Access = Literal["read", "write", "readwrite", "deny"]
COORDINATOR_COMMANDS = (contract.HOLD.name, contract.MOVE.name, contract.RELEASE.name)
THE_USER = "%u"  # mosquitto's ``pattern`` stands for the connected account's user name


@dataclass
class Account:
    user: str
    kind: str  # "host", "camera"..., "dashboard", "home_assistant"
    rules: list[tuple[Access, str]] = field(default_factory=list)

    def add(self, access: Access, topic: str) -> None:
        if (access, topic) not in self.rules:
            self.rules.append((access, topic))


def user_name(node: str, component: str) -> str:
    """``<node>-<component>``: also what a component without an account uses as requester id."""
    return f"{node}-{component}"


def accounts(mesh: Mesh, facts: list[NodeFacts]) -> list[Account]:
    root = Topics(mesh.topic_root, next(iter(mesh.nodes)))
    out: list[Account] = []
    for f in facts:
        for component in f.components:
            out.append(_component(mesh, root, f, component, facts))
    if mesh.dashboard:
        out.append(_reader(mesh, mesh.dashboard, "dashboard"))
    if mesh.home_assistant:
        ha = _reader(mesh, mesh.home_assistant.user, "home_assistant")
        ha.add("write", DiscoveryTopics(mesh.discovery_prefix, "-", "-").birth)
        for button in mesh.home_assistant.buttons:
            node, kind, name = button.split("/")
            c = root.component(kind, node)
            press = contract.CAMERA_PRESS.topic(c, name) if kind == contract.CAMERA else c.cmd(name)
            ha.add("write", root.absolute(press))
        out.append(ha)
    names = [a.user for a in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two accounts share the user name(s) {', '.join(dupes)}")
    return out


def _reader(mesh: Mesh, user: str, kind: str) -> Account:
    account = Account(user, kind)
    account.add("deny", join(mesh.topic_root, contract.REPLY, contract.ALL_BELOW))  # others' answers are theirs
    account.add("read", join(mesh.topic_root, contract.ALL_BELOW))
    account.add("read", join(mesh.discovery_prefix, contract.ALL_BELOW))
    return account


def _component(mesh: Mesh, root: Topics, f: NodeFacts, component: str, facts: list[NodeFacts]) -> Account:
    me = root.component(component, f.node)
    account = Account(user_name(f.node, component), component)
    account.add("readwrite", root.absolute(join(me.base, contract.ALL_BELOW)))
    account.add("write", root.absolute(reply_writes(me)))
    if f.discovery:
        discovery = DiscoveryTopics(mesh.discovery_prefix, f.node, component)
        account.add("readwrite", discovery.own_configs_filter)
        account.add("read", discovery.birth)
    if component == contract.PRINTER:
        for coordinator in trusted_holders(facts)[f.node]:
            account.add("read", root.absolute(root.component(contract.COORDINATOR, coordinator).status))
    if component == contract.COORDINATOR:
        account.add("read", root.absolute(contract.COORDINATOR_STATUS_FILTER))
        account.add("read", root.absolute(contract.COORDINATOR_FLEET.filter(contract.wildcard(contract.COORDINATOR))))
        for printer in f.printers:
            p = root.component(contract.PRINTER, printer.node)
            account.add("read", root.absolute(join(p.base, contract.ALL_BELOW)))
            for name in COORDINATOR_COMMANDS:
                account.add("write", root.absolute(p.cmd(name)))
            for ref in printer.cameras:
                cam = root.component(contract.CAMERA, ref.node)
                account.add("read", root.absolute(cam.status))
                account.add("read", root.absolute(join(cam.sub(ref.camera), contract.ALL_BELOW)))
                account.add("read", root.absolute(contract.CAPTURE.res(cam)))
                account.add("write", root.absolute(contract.CAPTURE.cmd(cam)))
    return account


def trusted_holders(facts: list[NodeFacts]) -> dict[str, list[str]]:
    """Per printer node, the coordinators configured for it: its ``commands.trusted_holders``.

    The same coordinators whose status the ACL lets that bridge read, and the only accounts
    that may write its hold, move and release commands.
    """
    printers = [f.node for f in facts if contract.PRINTER in f.components]
    return {p: [c.node for c in facts if any(ref.node == p for ref in c.printers)] for p in printers}


def acl_text(mesh: Mesh, all_accounts: list[Account], source: str) -> str:
    lines = [
        f"# Generated by `printmesh broker-config {source}`: edit that file and run it again.",
        "# One account per component of each node; each may use only the topics below.",
        "",
        "# Every account reads the answers to its own MQTT 5 requests.",
        f"pattern read {join(mesh.topic_root, contract.REPLY, THE_USER, contract.ALL_BELOW)}",
    ]
    for account in all_accounts:
        lines += ["", f"# {account.kind}", f"user {account.user}"]
        lines += [f"topic {access} {topic}" for access, topic in account.rules]
    return "\n".join(lines) + "\n"
