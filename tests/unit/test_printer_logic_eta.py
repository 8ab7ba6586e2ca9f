"""Bridge pure core: heater ETAs and the per-heater state, and fan speeds from M106/M107."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octoprint_printmesh.logic.eta import EtaSettings, HeaterHistory, classify, update, update_all
from octoprint_printmesh.logic.fans import Fans, FanSettings, fans_payload, feed
from printmesh_core.models.printer import HeaterTemperature, PrinterTemperatures

S = EtaSettings()


def run(curve, target, seconds, step=1.0, s=S, history=None):
    """Feed ``curve(t)`` every ``step`` seconds; return the final history and estimate."""
    history = history or HeaterHistory()
    estimate = None
    t = 0.0
    while t <= seconds + 1e-9:
        history, estimate = update(history, curve(t), target, 1000.0 + t, s)
        t += step
    return history, estimate


def first_order(start: float, asymptote: float, tau: float):
    return lambda t: asymptote + (start - asymptote) * math.exp(-t / tau)


# ------------------------------------------------------------------ states
@pytest.mark.parametrize(
    ("actual", "target", "previous", "expected"),
    [
        (25.0, 0.0, "idle", "idle"),
        (34.9, 0.0, "idle", "idle"),
        (80.0, 0.0, "idle", "cooling"),
        (100.0, 210.0, "idle", "heating"),
        (209.5, 210.0, "heating", "at_target"),
        (211.8, 210.0, "at_target", "at_target"),  # hysteresis: stays until beyond tolerance + hysteresis
        (211.8, 210.0, "heating", "cooling"),
        (212.5, 210.0, "at_target", "cooling"),
        (180.0, 210.0, "at_target", "heating"),
    ],
)
def test_classify(actual, target, previous, expected):
    assert classify(actual, target, previous, S) == expected


def test_idle_and_at_target_estimates():
    _, est = update(HeaterHistory(), 24.0, 0.0, 1.0, S)
    assert est.state == "idle" and est.eta is None and est.method == "none"
    _, est = update(HeaterHistory(), 60.0, 60.3, 1.0, S)
    assert est.state == "at_target" and est.eta == 0.0
    _, est = update(HeaterHistory(), 60.0, None, 1.0, S)
    assert est.target == 0.0 and est.state == "cooling", "an unknown target is treated as off"


# ------------------------------------------------------------------ heating
def test_exponential_fit_matches_a_first_order_heater():
    tau, target = 60.0, 210.0
    curve = first_order(25.0, target, tau)
    _, est = run(curve, target, 40)
    true_eta = tau * math.log((target - curve(40)) / S.tolerance)
    assert est.state == "heating" and est.method == "exponential"
    assert est.eta == pytest.approx(true_eta, rel=0.02)
    assert est.eta_linear is not None and est.eta_linear < est.eta, "linear is optimistic near the set point"
    assert est.rate is not None and est.rate > 0 and est.goal == target - S.tolerance


def test_linear_heater_uses_the_window_endpoints():
    _, est = run(lambda t: 25.0 + 2.0 * t, 200.0, 3)
    assert est.method == "linear" and est.rate == pytest.approx(2.0)
    assert est.eta == pytest.approx((199.0 - 31.0) / 2.0, abs=0.1)
    assert est.eta_exponential is None, "too few samples for a fit"


def test_the_fit_needs_enough_samples_span_and_rise():
    curve = first_order(25.0, 210.0, 60.0)
    _, est = run(curve, 210.0, 4)
    assert est.eta_exponential is None, "5 samples over 4 s"
    _, flat = run(lambda t: 100.0 + 0.005 * t, 210.0, 20)
    assert flat.eta_exponential is None, "0.1 °C of rise is below min_change"
    assert flat.eta is None and flat.method == "none", "0.005 °C/s is below min_rate: no honest estimate"


def test_a_tau_over_2000_s_is_rejected_and_the_linear_estimate_is_used():
    curve = first_order(25.0, 210.0, 5000.0)
    _, est = run(curve, 210.0, 30)
    assert est.eta_exponential is None and est.method == "linear" and est.eta is not None


def test_the_exponential_estimate_is_capped_at_five_times_linear():
    s = EtaSettings(max_tau=100000.0)
    curve = first_order(25.0, 210.0, 3000.0)
    _, est = run(curve, 210.0, 30, s=s)
    assert est.eta_linear is not None and est.eta_exponential is not None
    assert est.eta_exponential == pytest.approx(5 * est.eta_linear, rel=0.01) and est.method == "exponential"


def test_history_resets_when_the_target_changes():
    curve = first_order(25.0, 210.0, 60.0)
    history, est = run(curve, 210.0, 30)
    assert est.method == "exponential" and len(history.samples) > 6
    history, est = update(history, curve(31), 240.0, 1031.0, S)
    assert history.samples == ((1031.0, curve(31)),) and est.eta is None and est.method == "none"


def test_history_is_bounded_and_ignores_repeated_timestamps():
    history, _ = run(lambda t: 25.0 + t, 300.0, 200)
    assert len(history.samples) <= S.fit_window + 1
    again, _ = update(history, 226.5, 300.0, history.samples[-1][0], S)
    assert again.samples[-1][1] == 226.5 and len(again.samples) == len(history.samples)


# ------------------------------------------------------------------ cooling
def test_cooling_towards_ambient_when_off():
    tau = 120.0
    curve = first_order(200.0, S.ambient, tau)
    _, est = run(curve, 0.0, 30)
    goal = S.ambient + S.idle_margin
    true_eta = tau * math.log((curve(30) - S.ambient) / (goal - S.ambient))
    assert est.state == "cooling" and est.goal == goal and est.method == "exponential"
    assert est.eta == pytest.approx(true_eta, rel=0.02)
    assert est.rate is not None and est.rate < 0


def test_cooling_to_a_lower_set_point():
    curve = first_order(240.0, S.ambient, 300.0)
    _, est = run(curve, 200.0, 30)
    assert est.state == "cooling" and est.goal == 201.0 and est.eta is not None and est.eta > 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(15, 300),
    target=st.one_of(st.just(0.0), st.floats(30, 300)),
    tau=st.floats(5, 3000),
    seconds=st.integers(0, 60),
)
def test_estimates_are_never_negative_and_method_matches(start, target, tau, seconds):
    asymptote = target if target > start else S.ambient
    _, est = run(first_order(start, asymptote, tau), target, seconds)
    for value in (est.eta, est.eta_linear, est.eta_exponential):
        assert value is None or value >= 0
    assert (est.method == "none") == (est.eta is None) or est.state == "at_target"
    if est.method == "exponential":
        assert est.eta == est.eta_exponential
    if est.method == "linear":
        assert est.eta == est.eta_linear


def test_update_all_covers_every_heater_and_reports_state_changes():
    temps = PrinterTemperatures(
        ts=1.0,
        tools={
            "tool0": HeaterTemperature(actual=25.0, target=210.0),
            "tool1": HeaterTemperature(actual=None, target=0),
        },
        bed=HeaterTemperature(actual=59.8, target=60.0),
        chamber=None,
    )
    histories, payload, changes = update_all({}, temps, 1.0, S)
    assert set(histories) == {"tool0", "bed"} and set(payload.heaters) == {"tool0", "bed"}
    assert payload.heaters["bed"].state == "at_target" and changes == []
    hot = temps.model_copy(update={"tools": {"tool0": HeaterTemperature(actual=209.9, target=210.0)}})
    histories, payload, changes = update_all(histories, hot, 2.0, S)
    assert changes == [("tool0", "heating", "at_target")]


# ------------------------------------------------------------------ fans
def fan_run(*lines: str, s: FanSettings | None = None) -> dict[str, tuple[float, int]]:
    fans = Fans.empty()
    for i, line in enumerate(lines):
        fans = feed(fans, line, float(i), s or FanSettings())
    return {k: (v.speed, v.raw) for k, v in fans_payload(fans, 99.0).fans.items()}


def test_m106_m107_basics():
    assert fan_run("M106 S255") == {"0": (100.0, 255)}
    assert fan_run("M106 S127") == {"0": (49.8, 127)}
    assert fan_run("M106") == {"0": (100.0, 255)}, "no S: full speed"
    assert fan_run("M106 S200", "M107") == {"0": (0.0, 0)}
    assert fan_run("M106 S300") == {"0": (100.0, 255)}, "clamped"
    assert fan_run("G1 X10", "M105") == {}


def test_marlin_s1_is_one_step_not_full():
    assert fan_run("M106 S1") == {"0": (0.4, 1)}


def test_reprap_scale_reads_fractions():
    rrf = FanSettings(scale="reprap")
    assert fan_run("M106 S1", s=rrf) == {"0": (100.0, 255)}
    assert fan_run("M106 S0.5", s=rrf) == {"0": (50.2, 128)}
    assert fan_run("M106 S128", s=rrf) == {"0": (50.2, 128)}


def test_p_index_addresses_each_fan():
    assert fan_run("M106 P1", "M106 S64", "M107 P1") == {"0": (25.1, 64), "1": (0.0, 0)}
    assert fan_run("M106 P1.5 S255", "M106 P99 S255") == {}, "not a fan index"


def test_marlin_temporary_speed_t_parameter():
    assert fan_run("M106 S100", "M106 T200") == {"0": (39.2, 100)}, "T3-255 only stores"
    assert fan_run("M106 S100", "M106 T200", "M106 T2") == {"0": (78.4, 200)}
    assert fan_run("M106 S100", "M106 T200", "M106 T2", "M106 T1") == {"0": (39.2, 100)}
    assert fan_run("M106 S100", "M106 T2") == {"0": (39.2, 100)}, "nothing stored"


def test_fan_payload_keeps_the_command_and_time():
    fans = feed(Fans.empty(), "M106 P1 S128 ; part fan", 12.5, FanSettings())
    fan = fans_payload(fans, 13.0).fans["1"]
    assert fan.command == "M106 P1 S128" and fan.at == 12.5
