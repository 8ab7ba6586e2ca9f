"""Heat-up and cool-down ETAs per heater, from the temperature samples alone.

Two estimates run side by side. The linear one (the ends of a ~10 s window) reacts fast
but is far too optimistic near the set point, where a PID-controlled heater slows down.
The exponential one fits a first-order approach, ln|asymptote - T| against t, whose
slope gives the time constant tau (ETA = tau * ln(|asymptote - T| / |asymptote - goal|));
it is only trusted with enough samples, enough change, a plausible tau, and never more
than ``cap_factor`` times the linear estimate. Heating approaches the set point (the
controller throttles near it), so there the asymptote is the target and the goal is the
edge of the tolerance band. Cooling is the heater doing nothing, i.e. Newton cooling
towards ambient, so there the asymptote is ``ambient``; the goal is the target band, or
"near ambient" when the heater is off.

History is dropped whenever the target or the direction changes, because samples from
another regime would bend the fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from printmesh_core.models.printer import EtaMethod, HeaterEta, HeaterState, PrinterHeatingEta, PrinterTemperatures


@dataclass(frozen=True)
class EtaSettings:
    tolerance: float = 1.0  # °C: at_target within this; the ETA is to reach this band
    hysteresis: float = 1.0  # °C more before at_target is left again (PID wobble must not flap)
    ambient: float = 25.0  # °C: what an unheated part cools towards
    idle_margin: float = 10.0  # °C above ambient that still counts as cool (idle when off)
    linear_window: float = 10.0  # s
    fit_window: float = 30.0  # s
    min_samples: int = 6
    min_span: float = 5.0  # s of samples the fit needs
    min_change: float = 0.2  # °C the fit window must have moved towards the goal
    max_tau: float = 2000.0  # s; a slower "fit" is noise
    cap_factor: float = 5.0  # the exponential ETA is at most this times the linear one
    min_rate: float = 0.01  # °C/s; slower than this gives no linear ETA


@dataclass(frozen=True)
class HeaterHistory:
    target: float | None = None
    direction: HeaterState | None = None  # heating or cooling while the samples were taken
    state: HeaterState = "idle"
    samples: tuple[tuple[float, float], ...] = ()  # (t, °C), oldest first


def classify(actual: float, target: float, previous: HeaterState, s: EtaSettings) -> HeaterState:
    """heating / cooling / at_target / idle, with hysteresis around the target band."""
    if target <= 0:
        return "idle" if actual <= s.ambient + s.idle_margin else "cooling"
    band = s.tolerance + (s.hysteresis if previous == "at_target" else 0.0)
    if abs(actual - target) <= band:
        return "at_target"
    return "heating" if actual < target else "cooling"


def _linear(samples: tuple[tuple[float, float], ...], now: float, s: EtaSettings) -> float | None:
    window = [p for p in samples if p[0] >= now - s.linear_window]
    if len(window) < 2 or window[-1][0] - window[0][0] <= 0:
        return None
    (t0, v0), (t1, v1) = window[0], window[-1]
    return (v1 - v0) / (t1 - t0)


def _tau(
    samples: tuple[tuple[float, float], ...], asymptote: float, sign: float, now: float, s: EtaSettings
) -> float | None:
    """Least-squares tau of ln|asymptote - T| = a - t/tau; None unless the data supports it."""
    window = [(t, v) for t, v in samples if t >= now - s.fit_window and sign * (asymptote - v) > 0]
    if len(window) < s.min_samples or window[-1][0] - window[0][0] < s.min_span:
        return None
    if sign * (window[-1][1] - window[0][1]) < s.min_change:
        return None
    xs = [t for t, _ in window]
    ys = [math.log(sign * (asymptote - v)) for _, v in window]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope >= 0:
        return None
    tau = -1.0 / slope
    return tau if tau <= s.max_tau else None


def update(
    history: HeaterHistory, actual: float, target: float | None, now: float, s: EtaSettings
) -> tuple[HeaterHistory, HeaterEta]:
    """Add one sample; return the new history and the estimate for this heater."""
    tgt = target if target is not None and target > 0 else 0.0
    state = classify(actual, tgt, history.state, s)
    direction = state if state in ("heating", "cooling") else None
    samples = history.samples
    if history.target != tgt or direction != history.direction:
        samples = ()
    keep_from = now - max(s.fit_window, s.linear_window)
    samples = (*(p for p in samples if keep_from <= p[0] < now), (now, actual))  # a repeated or older t replaces
    new = replace(history, target=tgt, direction=direction, state=state, samples=samples)
    if state == "at_target":
        return new, HeaterEta(state=state, actual=actual, target=tgt, goal=tgt, eta=0.0, method="none")
    if state == "idle":
        return new, HeaterEta(state=state, actual=actual, target=tgt)

    sign = 1.0 if state == "heating" else -1.0
    if state == "heating":  # the controller drives it towards the set point
        asymptote, goal = tgt, tgt - s.tolerance
    else:  # the heater is off (or idling below the target): Newton cooling towards ambient
        goal = tgt + s.tolerance if tgt > 0 else s.ambient + s.idle_margin
        asymptote = min(s.ambient, goal - s.tolerance)
    rate = _linear(samples, now, s)
    remaining = sign * (goal - actual)
    eta_lin = remaining / abs(rate) if rate is not None and sign * rate >= s.min_rate else None
    eta_exp = None
    tau = _tau(samples, asymptote, sign, now, s)
    if tau is not None and sign * (asymptote - actual) > 0:
        eta_exp = tau * math.log(sign * (asymptote - actual) / (sign * (asymptote - goal)))
        if eta_lin is not None:
            eta_exp = min(eta_exp, s.cap_factor * eta_lin)
    method: EtaMethod = "exponential" if eta_exp is not None else "linear" if eta_lin is not None else "none"
    eta = eta_exp if eta_exp is not None else eta_lin
    return new, HeaterEta(
        state=state,
        actual=actual,
        target=tgt,
        goal=round(goal, 2),
        rate=None if rate is None else round(rate, 3),
        eta_linear=None if eta_lin is None else round(max(eta_lin, 0.0), 1),
        eta_exponential=None if eta_exp is None else round(max(eta_exp, 0.0), 1),
        eta=None if eta is None else round(max(eta, 0.0), 1),
        method=method,
    )


def update_all(
    histories: Mapping[str, HeaterHistory], temps: PrinterTemperatures, now: float, s: EtaSettings
) -> tuple[dict[str, HeaterHistory], PrinterHeatingEta, list[tuple[str, HeaterState, HeaterState]]]:
    """Every heater in ``temps`` that reports a temperature; heaters that vanished are dropped.

    Also returns the state changes ``(heater, old, new)`` so the shell can publish them as events.
    """
    heaters = dict(temps.tools)
    if temps.bed is not None:
        heaters["bed"] = temps.bed
    if temps.chamber is not None:
        heaters["chamber"] = temps.chamber
    new_histories: dict[str, HeaterHistory] = {}
    estimates: dict[str, HeaterEta] = {}
    changes: list[tuple[str, HeaterState, HeaterState]] = []
    for name, reading in sorted(heaters.items()):
        if reading.actual is None:
            continue
        old = histories.get(name)
        new_histories[name], estimates[name] = update(old or HeaterHistory(), reading.actual, reading.target, now, s)
        if old is not None and old.state != new_histories[name].state:
            changes.append((name, old.state, new_histories[name].state))
    return new_histories, PrinterHeatingEta(ts=now, heaters=estimates), changes
