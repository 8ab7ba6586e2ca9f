"""docs/home-assistant.md lists every entity the components announce, and the discovery configs
carry printmesh's origin; the doc's list fails this test when it and the entity code disagree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from printmesh_core import __version__
from printmesh_core.discovery import Entity, entity_config

REPO = Path(__file__).resolve().parents[2]


def _doc_tool():
    spec = importlib.util.spec_from_file_location("ha_entities_doc", REPO / "scripts" / "ha_entities_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ha_entities_doc"] = module
    spec.loader.exec_module(module)
    return module


def test_doc_lists_exactly_the_entities_of_the_code():
    tool = _doc_tool()
    text = (REPO / "docs" / "home-assistant.md").read_text(encoding="utf-8")
    assert tool.updated(text) == text, "docs/home-assistant.md is out of date: run scripts/ha_entities_doc.py"


def test_doc_check_fails_when_an_entity_is_missing_from_the_doc():
    tool = _doc_tool()
    text = (REPO / "docs" / "home-assistant.md").read_text(encoding="utf-8")
    stale = text.replace("| `button.<node>_printer_pause` | Pause print |  |  |  |\n", "")
    assert stale != text and tool.updated(stale) != stale


def test_every_component_announces_origin_and_health_is_diagnostic():
    tool = _doc_tool()
    components = tool.components()
    for entities in components.values():
        for e in entities:
            config = entity_config(e, "octopi", "x", "printmesh/octopi/x/status")
            assert config["origin"] == {
                "name": "printmesh",
                "sw_version": __version__,
                "support_url": "https://github.com/printmesh/printmesh",
            }
    by_id = {e.object_id: e for entities in components.values() for e in entities}
    health = ["swap_usage", "uptime", "last_boot", "under_voltage", "throttled", "enclosure_problem",
              "printer_connected", "octopi_failures"]  # fmt: skip
    for oid in health:
        assert by_id[oid].options.get("entity_category") == "diagnostic", oid
    for oid in ("printer_state", "printer_pause", "bed_capture", "enclosure_temperature"):
        assert "entity_category" not in by_id[oid].options, oid


def test_entity_options_cannot_drop_the_origin():
    config = entity_config(Entity("sensor", "a", "A", {"state_topic": "t"}), "n", "c", "s")
    assert config["origin"]["support_url"].startswith("https://")
