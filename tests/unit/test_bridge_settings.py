"""The plugin's settings: defaults validate, older layouts migrate, bad values name their key."""

from __future__ import annotations

import copy

import pytest

from octoprint_printmesh.settings import DEFAULTS, SETTINGS_VERSION, migrate, to_bridge_settings
from printmesh_core.config import ConfigError


def test_defaults_are_valid_and_safe():
    settings = to_bridge_settings(copy.deepcopy(DEFAULTS))
    assert SETTINGS_VERSION == 2
    p = settings.permissions
    assert (p.allow_hold, p.allow_move, p.allow_cancel, p.allow_gcode) == (True, True, False, False)
    config = settings.hold_config("abc")
    assert config.max_hold == 300 and config.safety.margin == 5.0 and config.safety.max_z is None
    assert settings.commands.dedupe_window == 60.0, "the core's command settings stay under commands too"


def test_version_1_allow_cancel_moves_under_commands_and_an_early_draft_broker_moves_under_mqtt():
    v1 = {"allow_cancel": True, "node_id": "p1"}
    assert migrate(v1, 1) == {"commands": {"allow_cancel": True}, "node_id": "p1"}
    draft = {"broker_host": "pi", "broker_port": 1884}
    migrated = migrate(draft, None)
    assert migrated == {"mqtt": {"host": "pi", "port": 1884}}
    assert to_bridge_settings({**DEFAULTS, **migrate(v1, 1)}).allow_cancel is True
    assert migrate({"commands": {"allow_cancel": False}}, 2) == {"commands": {"allow_cancel": False}}


@pytest.mark.parametrize(
    ("tree", "key"),
    [
        ({"commands": {"gcode_allow": ["M117", "G1 X5"]}}, "commands.gcode_allow"),
        ({"safety": {"margin": -1}}, "safety.margin"),
        ({"hold": {"max_hold": 1}}, "hold.max_hold"),
        ({"publish": {"temperature_interval": 0}}, "publish.temperature_interval"),
        ({"commands": {"allow_move": "sometimes"}}, "commands.allow_move"),
        ({"safety": {"clearence": 2}}, "safety.clearence"),
    ],
)
def test_a_bad_value_is_refused_with_its_key(tree, key):
    with pytest.raises(ConfigError, match=key):
        to_bridge_settings({**copy.deepcopy(DEFAULTS), **tree})


def test_allow_list_is_normalised():
    settings = to_bridge_settings({"commands": {"gcode_allow": [" m117 ", "M300"]}})
    assert settings.permissions.gcode_allow == ["M117", "M300"]


def test_a_broker_cluster_in_octoprint_settings_is_the_plugin_broker_list():
    """OctoPrint merges the defaults in (``host: localhost``): only a host set on purpose conflicts."""
    tree = copy.deepcopy(DEFAULTS)
    tree["mqtt"].update(hosts=["127.0.0.1:4001", "127.0.0.1:4002"], max_subscribe_qos=0, protocol="3.1.1")
    mqtt = to_bridge_settings(tree).mqtt
    assert mqtt.where == "127.0.0.1:4001, 127.0.0.1:4002" and mqtt.max_subscribe_qos == 0
    tree["mqtt"]["host"] = "127.0.0.9"
    with pytest.raises(ConfigError, match=r"either mqtt\.hosts"):
        to_bridge_settings(tree)
    tree["mqtt"].update(host="localhost", hosts=["127.0.0.1:4001", "127.0.0.1:x"])
    with pytest.raises(ConfigError, match=r"mqtt\.hosts\.1"):
        to_bridge_settings(tree)
    assert to_bridge_settings(copy.deepcopy(DEFAULTS)).mqtt.where == "localhost:1883", "one broker by default"


def test_octoprint_s_config_version_is_not_an_unknown_key():
    """OctoPrint stores ``_config_version`` in the plugin's section after the first start's
    migration: a restarted OctoPrint must still connect (it refused with 'unknown key')."""
    tree = {**copy.deepcopy(DEFAULTS), "_config_version": SETTINGS_VERSION}
    assert to_bridge_settings(tree) == to_bridge_settings(copy.deepcopy(DEFAULTS))
    with pytest.raises(ConfigError, match="config_version2"):
        to_bridge_settings({**copy.deepcopy(DEFAULTS), "config_version2": 1})
