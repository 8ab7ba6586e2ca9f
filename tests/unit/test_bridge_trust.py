"""The holders a printer trusts: settings, the hold command's check, and the presence followed.

With ``commands.trusted_holders`` set, a hold must name one of those coordinators, and the
bridge reads presence only from their status topics (subscribed from the start, never from a
name a request brings). Empty, the bridge behaves as before: any holder a hold names. The
broker's ACL decides who may send the commands at all (tests/integration/test_trusted_holders.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from octoprint_printmesh.hold.commands import HoldCommands, Refused
from octoprint_printmesh.hold.driver import Effects, HoldDriver
from octoprint_printmesh.hold.link import HoldLink
from octoprint_printmesh.hold.types import HoldCommand
from octoprint_printmesh.settings import DEFAULTS, RESTRICTED, to_bridge_settings
from printmesh_core.config import ConfigError
from printmesh_core.models.printer import HoldPlan, HoldRequest
from printmesh_core.node import NodeShell


def settings(**commands: Any) -> Any:
    tree = copy.deepcopy(DEFAULTS)
    tree["node_id"] = "octo"
    tree["commands"].update(commands)
    return to_bridge_settings(tree)


def test_trusted_holders_default_to_none_and_are_node_ids():
    assert DEFAULTS["commands"]["trusted_holders"] == []
    assert settings().permissions.holders == ()
    s = settings(trusted_holders=[" server ", "farm-2", "server", ""])
    assert s.permissions.trusted_holders == ["server", "farm-2"]
    assert s.permissions.holders == ("server/coordinator", "farm-2/coordinator")
    for bad in (["a/b"], ["reply"], ["has space"], ["+"]):
        with pytest.raises(ConfigError, match=r"commands\.trusted_holders"):
            settings(trusted_holders=bad)


def test_the_bridge_takes_its_secrets_from_files_and_keeps_them_admin_only(tmp_path: Path):
    (tmp_path / "pw").write_text("s3cret-from-file\n")
    (tmp_path / "kp").write_text("key-pass\n")
    tree = copy.deepcopy(DEFAULTS)
    tree["mqtt"]["password_file"] = str(tmp_path / "pw")
    tree["mqtt"]["tls"]["key_password_file"] = str(tmp_path / "kp")
    s = to_bridge_settings(tree)
    assert s.mqtt.password is not None and s.mqtt.password.get_secret_value() == "s3cret-from-file"
    assert s.mqtt.tls.key_password is not None and s.mqtt.tls.key_password.get_secret_value() == "key-pass"
    assert "s3cret-from-file" not in repr(s) and "key-pass" not in repr(s)
    tree["mqtt"]["password"] = "also-given"
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: give either password or password_file"):
        to_bridge_settings(tree)
    tree["mqtt"]["password"] = ""
    tree["mqtt"]["password_file"] = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: cannot read secret file"):
        to_bridge_settings(tree)
    assert ("mqtt", "password") in RESTRICTED and ("mqtt", "tls", "key_password") in RESTRICTED
    blank = to_bridge_settings(copy.deepcopy(DEFAULTS))
    assert blank.mqtt.password is None and blank.mqtt.tls.key_password is None, "empty fields are unset"


class Watcher:
    def __init__(self) -> None:
        self.watched: list[str] = []

    def __call__(self, holder: str) -> str | None:
        self.watched.append(holder)
        return None


def commands(trusted: list[str]) -> tuple[HoldCommands, Watcher]:
    s = settings(trusted_holders=trusted)
    effects = Effects(lambda on: None, lambda lines: None, lambda name, payload: None, lambda status: None)
    driver = HoldDriver(s.hold_config("t"), effects)  # never started: translate only reads it
    watcher = Watcher()
    return HoldCommands(driver, s.permissions, lambda: None, watcher), watcher


PLAN = HoldPlan(every=5)


@pytest.mark.parametrize(
    "holder", [None, "evil/coordinator", "server/camera", "server2/coordinator", "Server/coordinator"]
)
def test_with_trusted_holders_a_hold_must_name_one(holder):
    cmds, watcher = commands(["server"])
    for request in (HoldRequest(id="a", plan=PLAN, holder=holder), HoldRequest(id="b", now=True, holder=holder)):
        result = cmds.translate(request, "k1")
        assert isinstance(result, Refused) and result.code == "untrusted_holder", result
        assert "server/coordinator" in result.message and "commands.trusted_holders" in result.message
    assert watcher.watched == [], "no presence is followed for a name a request brings"


def test_a_trusted_holder_arms_and_without_a_list_any_holder_does():
    cmds, _ = commands(["server", "farm"])
    result = cmds.translate(HoldRequest(id="a", plan=PLAN, holder="farm/coordinator"), "k1")
    assert isinstance(result, HoldCommand) and result.holder == "farm/coordinator"
    open_cmds, open_watcher = commands([])
    for holder in (None, "anyone/coordinator"):
        result = open_cmds.translate(HoldRequest(id="a", plan=PLAN, holder=holder), "k1")
        assert isinstance(result, HoldCommand) and result.holder == holder
    assert open_watcher.watched == ["anyone/coordinator"], "as before: the named holder is followed"


def node(trusted: list[str]) -> NodeShell:
    return NodeShell(settings(trusted_holders=trusted), "printer")  # its runtime is never started


def filters(shell: NodeShell) -> list[str]:
    return [f for f, _ in shell.runtime._subs.filters()]


def test_the_link_follows_only_the_trusted_holders_status_from_the_start():
    shell = node(["server", "farm"])
    link = HoldLink(shell, lambda message: None, ("server/coordinator", "farm/coordinator"))
    before = filters(shell)
    assert "printmesh/server/coordinator/status" in before and "printmesh/farm/coordinator/status" in before
    assert [f for f in before if f.endswith("/status")] == [
        "printmesh/server/coordinator/status",
        "printmesh/farm/coordinator/status",
    ]
    assert link.watch_holder("evil/coordinator") is not None
    assert link.watch_holder("server/coordinator") is None
    assert filters(shell) == before, "a request's holder adds no subscription"


def test_the_open_link_follows_a_named_holder_as_before():
    shell = node([])
    link = HoldLink(shell, lambda message: None)
    assert not [f for f in filters(shell) if f.endswith("/status")]
    assert link.watch_holder("anyone/coordinator") is None
    assert "printmesh/anyone/coordinator/status" in filters(shell)
    assert link.watch_holder("no-slash") is not None
