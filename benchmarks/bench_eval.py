"""Where an evaluation round's time goes, with davisinteractive's metrics and with the project's.

Runs the project's loop (a real davisinteractive session, oracle ``worst``) twice on the same samples:
first scoring with the package's ``batched_jaccard`` / ``batched_f_measure`` (``interaction.loop.
REFERENCE_METRICS``), then with ``datasets.davis_metrics`` (the default). Prints per round the seconds in
the backend, the robot (the session's scribbles), the metrics, the rest of the session (reports,
bookkeeping) and the project's own code (quality step, recommender, loop), the share of the round
outside the backend, and whether both runs chose the same frames with the same J&F. Then times both
metric implementations on 30 frames x 3 objects at 480p, on ground truth and a prediction the
backend made (CPU seconds of this process, best of ``--repeat``; OpenCV on one thread).

    python -m datasets.synthetic --root /tmp/bench480 --train 0 --val 2 --frames 30 --min-objects 3 --max-objects 3 --seed 11
    OMP_NUM_THREADS=1 python benchmarks/bench_eval.py --dataset /tmp/bench480
    OMP_NUM_THREADS=1 python benchmarks/bench_eval.py --dataset /tmp/bench480 --samples 1 --rounds 2 --metrics-only
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTS = ("backend", "robot", "metrics", "session", "project")


class Timers:
    """CPU-independent wall-clock accumulators around the robot's and the metrics' functions."""

    def __init__(self) -> None:
        self.acc: dict[str, float] = defaultdict(float)

    def wrap(self, owner, name: str, key: str) -> None:
        f = getattr(owner, name)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                self.acc[key] += time.perf_counter() - t

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        out, self.acc = dict(self.acc), defaultdict(float)
        return out


def run(spec, samples, rounds: int, reference: bool, timers: Timers, keep: list) -> tuple[list, list]:
    import interaction.loop as loop
    from agent.selection import WorstSelector
    from VOS.registry import build_backend

    loop.REFERENCE_METRICS = reference
    per_round: list[dict[str, float]] = []

    def on_round(rec, rr, out) -> None:
        t = rr.timings
        got = timers.take()
        robot, metrics = got.get("robot", 0.0), got.get("metrics", 0.0)
        per_round.append({"round": rr.round, "total": t["round"], "backend": t["backend"], "robot": robot,
                          "metrics": metrics, "session": max(t["evaluator"] - robot - metrics, 0.0),
                          "project": t["round"] - t["backend"] - t["evaluator"]})
        if len(keep) < 3 and rr.round in (1, rounds):
            keep.append((rec.sequence, out.masks.copy()))

    import torch

    timers.take()
    recs = loop.run_episodes(spec, samples, "val", build_backend("classic", torch.device("cpu")), WorstSelector(),
                             rounds, on_round=on_round, progress=False)
    return recs, per_round


def table(per_round: list[dict[str, float]], rounds: int) -> list[dict[str, float]]:
    rows = []
    for r in range(1, rounds + 1):
        rs = [x for x in per_round if x["round"] == r]
        rows.append({k: float(np.mean([x[k] for x in rs])) for k in ("total", *PARTS)})
    return rows


def print_table(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'round':>5s} {'total':>7s} " + " ".join(f"{p:>8s}" for p in PARTS) + f" {'outside backend':>16s}")
    for i, r in enumerate(rows, 1):
        print(f"{i:5d} {r['total']:7.3f} " + " ".join(f"{r[p]:8.3f}" for p in PARTS)
              + f" {100 * (r['total'] - r['backend']) / r['total']:15.1f}%")
    tot = {k: float(np.mean([r[k] for r in rows])) for k in ("total", *PARTS)}
    print(f"{'mean':>5s} {tot['total']:7.3f} " + " ".join(f"{tot[p]:8.3f}" for p in PARTS)
          + f" {100 * (tot['total'] - tot['backend']) / tot['total']:15.1f}%")


def cpu_best(f, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        f()
        best = min(best, time.process_time() - t)
    return best


def _package_jf(gt, pred, K):
    from datasets import davis_compat as dc

    return dc.batched_jaccard(gt, pred, False, K), dc.batched_f_measure(gt, pred, False, K)


def metric_speed(spec, keep, repeat: int) -> None:
    import cv2

    from datasets import davis_compat as dc
    from datasets import davis_metrics as fm

    cv2.setNumThreads(1)        # the backend may have changed it; CPU time of one thread, both sides

    print("\nmetrics on one prediction of the backend (CPU s, best of %d; J and F per frame and object)" % repeat)
    print(f"{'sample':28s} {'T x K':>7s} {'package J+F':>12s} {'ours (API)':>11s} {'x':>6s} "
          f"{'ours (loop)':>12s} {'x':>6s}")
    ratios = []
    for seq, masks in keep:
        gt = spec.annotations(seq).astype(np.int64)
        K = int(spec.sequences[seq]["num_objects"])
        pred = masks.astype(np.int64)
        ref = (dc.batched_jaccard(gt, pred, False, K), dc.batched_f_measure(gt, pred, False, K))
        got = fm.jaccard_and_f(gt, pred, K)
        assert np.abs(ref[0] - got[0]).max() <= 1e-6 and np.abs(ref[1] - got[1]).max() <= 1e-6
        pkg = cpu_best(functools.partial(_package_jf, gt, pred, K), repeat)
        api = cpu_best(functools.partial(fm.jaccard_and_f, gt, pred, K), repeat)
        scorer = fm.MaskScorer(gt, K)            # the loop: ground truth prepared once per sample
        loop_t = cpu_best(functools.partial(scorer.score, masks), repeat)
        ratios.append((pkg / api, pkg / loop_t))
        print(f"{seq:28s} {len(gt):3d} x {K:<2d} {pkg:12.3f} {api:11.4f} {pkg / api:6.1f} {loop_t:12.4f} "
              f"{pkg / loop_t:6.1f}")
    a = np.mean([r[0] for r in ratios])
    b = np.mean([r[1] for r in ratios])
    print(f"speed-up of the metrics: {a:.1f}x through the package's API (int64 labels), "
          f"{b:.1f}x as the loop scores (uint8 prediction, ground truth prepared once)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="a DAVIS-layout root (e.g. synthetic, 30 frames, 3 objects)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--samples", type=int, default=2, help="the first N (sequence, scribble) samples of val")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--metrics-only", action="store_true",
                    help="only the metrics' speed (the backend's predictions of one run with our metrics)")
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(1)
    import davisinteractive.robot.interactive_robot as robot_mod

    from datasets import davis_compat as dc
    from datasets import davis_metrics as fm
    from datasets.layout import resolve
    from interaction.evaluate import samples_of

    dc.apply()
    spec = resolve(args.dataset, "data")
    samples = samples_of(spec, "val")[: args.samples]
    timers = Timers()
    timers.wrap(robot_mod.InteractiveScribblesRobot, "interact", "robot")
    for owner in (dc,):
        timers.wrap(owner, "batched_jaccard", "metrics")
        timers.wrap(owner, "batched_f_measure", "metrics")
    timers.wrap(fm.MaskScorer, "score", "metrics")
    timers.wrap(fm, "jaccard_and_f", "metrics")
    keep: list = []
    if args.metrics_only:
        run(spec, samples, args.rounds, False, timers, keep)
        metric_speed(spec, keep, args.repeat)
        return
    recs_ref, before = run(spec, samples, args.rounds, True, timers, [])
    recs_fast, after = run(spec, samples, args.rounds, False, timers, keep)
    same = all(a.curve == b.curve and [r.frame for r in a.rounds] == [r.frame for r in b.rounds]
               for a, b in zip(recs_ref, recs_fast, strict=True))
    T = {s: spec.sequences[s]["num_frames"] for s, _ in samples}
    K = {s: spec.sequences[s]["num_objects"] for s, _ in samples}
    print(f"classic backend, oracle worst, {len(samples)} samples of {spec.root} "
          f"({', '.join(f'{s}: {T[s]} frames x {K[s]} objects' for s in T)}), {args.rounds} rounds; "
          f"seconds per round (wall clock), mean over samples")
    print_table("before: davisinteractive's batched_jaccard / batched_f_measure", table(before, args.rounds))
    print_table("after: datasets.davis_metrics", table(after, args.rounds))
    print(f"\nsame frames and the same J&F curve in both runs: {same}")
    metric_speed(spec, keep, args.repeat)


if __name__ == "__main__":
    main()
