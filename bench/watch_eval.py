"""The print watch judged on generated jobs: a confusion table per fault kind, false problems, and its speed.

Two sets of jobs (bench/watch_jobs.py renders them with the virtual camera's own renderer):
a DEVELOPMENT set (seeds 1000-1999), the only one looked at while tuning the detector, and
an EVALUATION set (seeds 9000-9999), never used in tuning; only the evaluation set is
reported unless ``--dev``. Half the jobs are clean, half carry one fault (spaghetti, shift,
detach in turn) at a random layer; about a third have the realism knobs turned up (noise 9,
lighting drift 25 % with tint, jitter 3 px, JPEG quality 60).

A fault counts as:
  * ``at first``: flagged at the first captured layer whose frames show it (the renderer's
    rule: spaghetti and detach from their layer, a shift from the layer above it);
  * ``late``: first flagged at a later captured layer;
  * ``missed``: never flagged;
  * ``BEFORE``: a problem flagged at a captured layer before the fault showed (a false one).
A false problem is any problem verdict at a captured layer whose frames show no fault (clean
jobs, and faulty jobs before their fault); the rate is per 100 such layers.
Goals (issue 15): >= 95 % ``at first`` and no ``BEFORE``; <= 1 false problem per 100 clean
captured layers. Timing: ``Watcher.judge`` of one layer of 9 positions at 1280x720, as
arrays and as JPEG bytes (what the coordinator holds), goal <= 150 ms.

    .venv/bin/python bench/watch_eval.py [--dev] [--quick] [--jobs N] [--no-timing]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).parent))

from watch_jobs import DEV_SEEDS, EVAL_SEEDS, KINDS, Job, captures, make_jobs

from printmesh_coordinator.watch import Watcher

GOAL_MS = 150.0


EVERY, HINT, SCENE = 5, True, True  # set from the command line


def run_job(job: Job) -> tuple[list[tuple[int, bool, str]], float]:
    """(layer, fault shows, verdict) per captured layer, and the mean judge time (ms)."""
    watcher = Watcher()
    out, times = [], []
    for capture in captures(job, every=EVERY, hint=HINT, scene=SCENE):
        verdict = watcher.judge(capture.layer, capture.images, capture.hint)
        out.append((capture.layer, capture.faulty, verdict.verdict))
        times.append(verdict.elapsed_ms)
    return out, statistics.mean(times)


def evaluate(jobs: list[Job], verbose: bool) -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    clean_layers: Counter[str] = Counter()
    false: Counter[str] = Counter()
    judge_ms = []
    for job in jobs:
        start = time.perf_counter()
        layers, mean_ms = run_job(job)
        judge_ms.append(mean_ms)
        for _layer, faulty, verdict in layers[1:] if not layers[0][1] else layers:
            if not faulty:
                clean_layers[job.realism] += 1
                false[job.realism] += verdict != "ok"
        if job.fault is not None:
            kind = job.fault[0]
            flags = [(faulty, verdict) for _layer, faulty, verdict in layers if verdict != "ok"]
            first_faulty = next((v for _l, f, v in layers if f), None)
            if any(not f for f, _v in flags):
                outcome = "BEFORE"
            elif first_faulty is not None and first_faulty != "ok":
                outcome = "at first"
            elif flags:
                outcome = "late"
            else:
                outcome = "missed"
            outcomes[(kind, outcome)] += 1
            if flags:
                kinds[(kind, flags[0][1])] += 1
        if verbose:
            trace = " ".join(f"{layer}{'*' if f else ''}:{v}" for layer, f, v in layers)
            print(f"  {job.name:<34} {time.perf_counter() - start:5.1f} s  {trace}", flush=True)
    print(f"\n{'fault':<11}{'jobs':>6}{'at first':>10}{'late':>6}{'missed':>8}{'BEFORE':>8}{'at first %':>12}"
          f"   verdict at the first flag")  # fmt: skip
    total = Counter[str]()
    for kind in KINDS:
        row = {o: outcomes[(kind, o)] for o in ("at first", "late", "missed", "BEFORE")}
        n = sum(row.values())
        total.update(row)
        named = ", ".join(f"{v} {k}" for (f, v), k in sorted(kinds.items(), key=lambda i: -i[1]) if f == kind)
        share = f"{100 * row['at first'] / n:.0f} %" if n else "-"
        print(f"{kind:<11}{n:>6}{row['at first']:>10}{row['late']:>6}{row['missed']:>8}{row['BEFORE']:>8}{share:>12}"
              f"   {named}")  # fmt: skip
    n = sum(total.values())
    share = f"{100 * total['at first'] / n:.1f} %" if n else "-"
    print(f"{'all':<11}{n:>6}{total['at first']:>10}{total['late']:>6}{total['missed']:>8}{total['BEFORE']:>8}"
          f"{share:>12}   (goal >= 95 %, BEFORE 0)")  # fmt: skip
    print("\nclean captured layers (first capture of a job excluded: nothing to compare with)")
    for realism in sorted(clean_layers):
        layers, flags = clean_layers[realism], false[realism]
        print(
            f"  realism {realism:<8}{layers:>5} layers {flags:>3} false problems = {100 * flags / layers:.2f} per 100"
        )
    layers, flags = sum(clean_layers.values()), sum(false.values())
    print(f"  all             {layers:>5} layers {flags:>3} false problems = {100 * flags / max(layers, 1):.2f} per 100"
          f" (goal <= 1)")  # fmt: skip
    print(f"judge time per layer in these jobs (9 positions, 1280x720 arrays): mean {statistics.mean(judge_ms):.1f} ms")


def timing(repeats: int) -> None:
    """Watcher.judge of one layer (9 positions, 1280x720), arrays and JPEG bytes, against the goal."""
    job = Job(EVAL_SEEDS[0], "tower", "default", None)
    caps = [c for _, c in zip(range(4), captures(job), strict=False)]
    jpegs = [{k: cv2.imencode(".jpg", v, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for k, v in c.images.items()}
             for c in caps]  # fmt: skip
    print(f"\ntiming: Watcher.judge of one captured layer, 9 positions at 1280x720, {repeats} runs each")
    print(f"{'input':<22}{'p50 ms':>8}{'p90 ms':>8}{'cpu p50':>9}{'/ goal':>8}")
    for name, sets in (("BGR arrays", [c.images for c in caps]), ("JPEG bytes (q90)", jpegs)):
        wall, cpu = [], []
        for i in range(repeats):
            watcher = Watcher()
            watcher.judge(0, sets[i % 2])
            start, start_cpu = time.perf_counter(), time.process_time()
            watcher.judge(5, sets[i % 2 + 1])
            wall.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        wall.sort()
        p50, p90 = statistics.median(wall), wall[int(0.9 * (len(wall) - 1))]
        print(
            f"{name:<22}{p50:8.1f}{p90:8.1f}{statistics.median(cpu):9.1f}{p50 / GOAL_MS:8.2f}  (goal {GOAL_MS:.0f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="the development set instead of the evaluation set")
    parser.add_argument("--quick", action="store_true", help="12 jobs and 10 timing runs")
    parser.add_argument("--jobs", type=int, default=None, help="jobs in the set (default 36, --quick 12)")
    parser.add_argument("--offset", type=int, default=0, help="skip this many seeds of the set (a fresh slice)")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--every", type=int, default=5, help="layers between captures (default 5)")
    parser.add_argument("--no-hint", action="store_true", help="judge without the captures' z (GrowthHint)")
    parser.add_argument("--no-scene", action="store_true", help="judge without the G-code's outlines (silhouette)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every job's verdicts")
    args = parser.parse_args()
    global EVERY, HINT, SCENE
    EVERY, HINT, SCENE = args.every, not args.no_hint, not args.no_scene
    count = args.jobs or (12 if args.quick else 36)
    name, seeds = ("DEVELOPMENT", DEV_SEEDS) if args.dev else ("EVALUATION", EVAL_SEEDS)
    seeds = seeds[args.offset :]
    print(f"# watch_eval: {platform.python_version()}, OpenCV {cv2.__version__}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{name} set: {count} jobs from seeds {seeds.start}-{seeds.start + count - 1}, captures every {EVERY} "
          f"layers, 3x3 grid, head camera, z hint {'on' if HINT else 'off'}, "
          f"G-code silhouette {'on' if SCENE else 'off'}")  # fmt: skip
    started = time.perf_counter()
    evaluate(make_jobs(seeds, count, every=EVERY), args.verbose)
    print(f"({time.perf_counter() - started:.0f} s)")
    if not args.no_timing:
        timing(10 if args.quick else 30)


if __name__ == "__main__":
    main()
