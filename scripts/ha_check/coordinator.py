"""The coordinator's scenario: live, the print watch's verdicts, junk, birth, offline.

One printer, "octo", whose bridge never comes: the coordinator waits for it, so its capture
entities show "waiting" and zero counts. The print watch's two entities (``print problem``, a
problem binary_sensor, and ``watch verdict``) read ``<coord>/coordinator/octo/watch``; the
scenario publishes verdicts there in the coordinator's own model (``WatchVerdict``), as the
coordinator does after each captured layer, then junk, and checks what Home Assistant makes of
each.
"""

from __future__ import annotations

import json
import signal

from ha_check.common import Bus, Context, States, agent, all_in, check_birth, check_configs, check_table, state_of
from ha_check.common import stop_agent as stop
from printmesh_core.models.watch import WatchVerdict


def _config(ctx: Context) -> str:
    return f"""coordinator:
  captures_dir: {ctx.work}/captures
  pages: false
  printers:
    - node: octo
      plan: {{every: 5}}
      cameras: [{{node: cams, camera: bed}}]
      watch: {{on_problem: pause, min_confidence: 0.7}}
"""


def _verdict(kind: str, problem: bool, confidence: float) -> bytes:
    action = "pause" if problem else "none"
    return WatchVerdict(printer="octo", job="cube_20260101_000000", layer=15, verdict=kind, confidence=confidence,
                        score=3.5, problem=problem, action=action, flagged=["layer_0015_pos_04_20260101_000000.jpg"],
                        compared_with=[10], elapsed_ms=80.0).to_json()  # fmt: skip


def _live(ctx: Context, st: States, bus: Bus) -> None:
    c, by_id = ctx.check, ctx.component.by_id(ctx.node)
    for eid in check_table(ctx, st, "live"):
        state = state_of(st, eid)
        c(state == by_id[eid].expect, f"live: {eid} = {by_id[eid].expect!r} (got {state!r})")
    check_configs(ctx, bus, st, "live")


def _watch(ctx: Context, bus: Bus) -> None:
    c, ha = ctx.check, ctx.ha
    topic = f"printmesh/{ctx.node}/coordinator/octo/watch"
    problem, verdict = ctx.eid("octo_print_problem"), ctx.eid("octo_watch_verdict")

    def shows(want: tuple[str, str]) -> States:
        return ha.wait(lambda st: (state_of(st, problem), state_of(st, verdict)) == want, 10, 0.25)

    for payload, want, what in (
        (_verdict("ok", False, 0.95), ("off", "ok"), "an ok layer"),
        (_verdict("spaghetti", True, 0.9), ("on", "spaghetti"), "spaghetti at 0.9: a problem"),
        (_verdict("shift", False, 0.4), ("off", "shift"), "a shift below min_confidence: no problem"),
        (_verdict("detach", True, 0.8), ("on", "detach"), "a detach"),
        (b"not json", ("unknown", "unknown"), "junk"),
        (json.dumps({"verdict": 3, "problem": "yes"}).encode(), ("unknown", "unknown"), "wrong types"),
        (_verdict("ok", False, 0.99), ("off", "ok"), "ok again"),
    ):
        bus.publish(topic, payload, retain=True)
        st = shows(want)
        got = (state_of(st, problem), state_of(st, verdict))
        c(got == want, f"watch: {what} -> problem {want[0]}, verdict {want[1]} (got {got})")
        if want[1] == "detach":
            attrs = st.get(verdict, {}).get("attributes", {})
            c(attrs.get("confidence") == 0.8 and attrs.get("layer") == 15 and attrs.get("action") == "pause",
              f"watch: the verdict's fields are its attributes ({sorted(attrs)})")  # fmt: skip
            pattrs = st.get(problem, {}).get("attributes", {})
            c(pattrs.get("flagged") == ["layer_0015_pos_04_20260101_000000.jpg"],
              f"watch: the problem sensor lists the flagged images ({pattrs.get('flagged')})")  # fmt: skip


def run(ctx: Context) -> None:
    ha, everything = ctx.ha, ctx.component.ids(ctx.node)
    bus = Bus(ctx)
    state = ctx.eid("octo_capture_state")
    try:
        with agent(ctx, _config(ctx)) as proc:
            st = ha.wait(lambda st: all(e in st for e in everything) and state_of(st, state) == "waiting", 40)
            ctx.dump("live_states.json", st)
            _live(ctx, st, bus)
            _watch(ctx, bus)
            probe = ctx.eid("octo_watch_verdict")
            check_birth(ctx, bus, "octo_watch_verdict", lambda st: state_of(st, probe) == "ok")
            proc.send_signal(signal.SIGCONT)
            stop(ctx, proc, everything, "every entity unavailable, the print watch's too")
            st = ha.states()
            ctx.check(all_in(st, everything, "unavailable"), "offline: nothing left live")
    finally:
        bus.publish(f"printmesh/{ctx.node}/coordinator/octo/watch", b"", retain=True)
        bus.rt.stop()
