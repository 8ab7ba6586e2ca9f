import pytest

from printmesh_core.topics import DiscoveryTopics, TopicError, Topics, check_publish_topic, ha_id


def test_component_topics_are_built_under_node_and_component():
    t = Topics("printmesh", "octopi").component("host")
    assert t.status == "octopi/host/status"
    assert t.state == "octopi/host/state"
    assert t.cmd("refresh") == "octopi/host/cmd/refresh"
    assert t.res("refresh") == "octopi/host/res/refresh"
    assert t.cmd_filter == "octopi/host/cmd/+"
    assert t.sub("command", "uptime") == "octopi/host/command/uptime"


def test_root_is_configurable_and_absolute_round_trips():
    topics = Topics("farm/printmesh", "p1")
    assert topics.absolute("p1/host/state") == "farm/printmesh/p1/host/state"
    assert topics.relative("farm/printmesh/p1/host/state") == "p1/host/state"
    assert topics.relative("other/p1/host/state") is None
    assert topics.everything == "farm/printmesh/#"


def test_command_name_from_topic():
    t = Topics("printmesh", "n").component("host")
    assert t.command_name_from("n/host/cmd/refresh") == "refresh"
    assert t.command_name_from("n/host/cmd/a/b") is None
    assert t.command_name_from("n/host/res/refresh") is None
    assert t.command_name_from("n/host/cmd/") is None


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "x+", "with space", "é"])
def test_segments_refuse_wildcards_slashes_and_empties(bad):
    with pytest.raises(TopicError):
        Topics("printmesh", bad)


@pytest.mark.parametrize("bad", ["a/+/b", "a/#", "a//b", "/a", "a/", "", "a\x00b"])
def test_publish_topics_refuse_wildcards_and_empty_levels(bad):
    with pytest.raises(TopicError):
        check_publish_topic(bad)


def test_command_names_are_checked():
    with pytest.raises(TopicError):
        Topics("printmesh", "n").component("host").cmd("re/fresh")


def test_discovery_topics():
    d = DiscoveryTopics("homeassistant", "octo.pi", "host")
    assert d.ha_node == "printmesh_octo_pi_host"
    assert d.config("sensor", "cpu_usage") == "homeassistant/sensor/printmesh_octo_pi_host/cpu_usage/config"
    assert d.own_configs_filter == "homeassistant/+/printmesh_octo_pi_host/+/config"
    assert d.parse_config_topic("homeassistant/sensor/printmesh_octo_pi_host/cpu_usage/config") == (
        "sensor",
        "cpu_usage",
    )
    assert d.parse_config_topic("homeassistant/sensor/other/cpu_usage/config") is None
    assert d.birth == "homeassistant/status"
    assert ha_id("a.b/c d") == "a_b_c_d"
