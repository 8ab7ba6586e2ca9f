"""Running without a broker account is a choice the config must state (issue 12)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from printmesh_core.config import MqttConfig


@pytest.mark.parametrize("host", ["broker.lan", "10.0.0.5", "mosquitto"])
def test_a_remote_broker_without_an_account_is_refused_naming_the_key(host: str) -> None:
    with pytest.raises(ValidationError) as err:
        MqttConfig(host=host)
    text = str(err.value)
    assert "username" in text and "mqtt.anonymous: true" in text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1"])
def test_a_broker_private_to_this_machine_needs_no_account(host: str) -> None:
    assert MqttConfig(host=host).username is None


def test_anonymous_on_purpose_or_with_an_account_is_accepted() -> None:
    assert MqttConfig(host="broker.lan", anonymous=True).anonymous
    assert MqttConfig(host="broker.lan", username="lab-host").username == "lab-host"
