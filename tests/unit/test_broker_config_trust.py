"""``printmesh broker-config`` names each printer's trusted coordinators, the ones its ACL matches.

A bridge with ``commands.trusted_holders`` reads presence only from those coordinators'
status topics; the generated ACL lets it read exactly those, and lets exactly those
coordinators write its hold, move and release commands.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from printmesh_devkit.acl import accounts, trusted_holders
from printmesh_devkit.broker_config import main
from printmesh_devkit.mesh import load_mesh

MESH = {
    "nodes": {
        "pi": {"components": ["printer", "camera"]},
        "srv": {"components": ["coordinator"], "printers": [{"node": "pi"}]},
        "farm": {"components": ["coordinator"], "printers": [{"node": "pi"}, {"node": "other"}]},
        "other": {"components": ["printer"]},
        "lone": {"components": ["printer"]},
    },
}


def test_each_printer_trusts_the_coordinators_configured_for_it_and_its_acl_matches(tmp_path: Path, capsys):
    path = tmp_path / "mesh.yaml"
    path.write_text(yaml.safe_dump(MESH))  # keys sorted: farm before srv
    mesh, facts = load_mesh(path)
    holders = trusted_holders(facts)
    assert holders == {"pi": ["farm", "srv"], "other": ["farm"], "lone": []}
    for account in accounts(mesh, facts):
        if account.kind != "printer":
            continue
        node = account.user.removesuffix("-printer")
        statuses = [t for a, t in account.rules if t.endswith("/coordinator/status")]
        assert statuses == [f"printmesh/{c}/coordinator/status" for c in holders[node]], account
        assert all(a == "read" for a, t in account.rules if t.endswith("/coordinator/status"))
    for account in accounts(mesh, facts):
        writes = {
            t for a, t in account.rules if a in ("write", "readwrite") and t.startswith("printmesh/pi/printer/cmd/")
        }
        if account.kind == "coordinator":
            node = account.user.removesuffix("-coordinator")
            assert writes == {f"printmesh/pi/printer/cmd/{c}" for c in ("hold", "move", "release")}, node
    assert main([str(path), "--out", str(tmp_path / "out"), "--secrets", str(tmp_path / "secrets")]) == 0
    out = capsys.readouterr().out
    assert "# pi: OctoPrint > printmesh > Trusted coordinators (commands.trusted_holders): farm, srv" in out
    assert "# lone: OctoPrint > printmesh > Trusted coordinators (commands.trusted_holders): (none" in out
