"""The reconnect ceiling keeps every component within 5 s of a restarted broker's return."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from printmesh_core.config import RECONNECT_CEILING, MqttConfig


def test_the_default_backoff_tops_out_at_2_s():
    reconnect = MqttConfig().reconnect
    assert (reconnect.min_delay, reconnect.max_delay) == (1, 2)


def test_a_ceiling_that_would_leave_a_component_away_for_long_is_refused_naming_the_key():
    with pytest.raises(ValidationError) as caught:
        MqttConfig.model_validate({"reconnect": {"max_delay": 30}})
    assert caught.value.errors()[0]["loc"] == ("reconnect", "max_delay")
    assert MqttConfig.model_validate({"reconnect": {"max_delay": RECONNECT_CEILING}}).reconnect.max_delay == 3
