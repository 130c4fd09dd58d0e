"""Speed and quality of the ``classic`` backend: oracle-worst through the project's interaction loop.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_classic.py --root /tmp/syn [--sequences 6] [--scribbles 1] [--rounds 8]

Runs :func:`interaction.loop.run_episodes` (a real davisinteractive session per sample, the robot
scribbling on the frame the selector asks for) with :class:`agent.selection.WorstSelector` in the
``oracle`` setting, and prints: J&F per round (object-weighted, as davisinteractive's summary
computes it from the session reports), the round-AUC (PROTOCOL.md section 4), the backend's
seconds per round (first round of a video, which includes the optical flow, and later rounds
separately) and the peak resident memory of the process. Generates the synthetic val set
(12 sequences, 40 frames, 480x854) under ``--root`` first if it is missing.
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.selection import WorstSelector  # noqa: E402
from datasets.layout import DatasetError, resolve  # noqa: E402
from interaction.evaluate import samples_of  # noqa: E402
from interaction.loop import run_episodes  # noqa: E402
from interaction.metrics import curve_from_report, round_auc  # noqa: E402
from VOS.registry import build_backend  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/synthetic", help="synthetic DAVIS-layout root (generated if missing)")
    p.add_argument("--sequences", type=int, default=0, help="use only the first N val sequences (0 = all)")
    p.add_argument("--scribbles", type=int, nargs="*", default=None,
                   help="initial scribble indices to run (default: all 3 per sequence)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--work-size", type=int, default=432, help="classic backend working resolution (longest side)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a classic backend option, e.g. --option propagation=colour (repeatable)")
    p.add_argument("--breakdown", action="store_true",
                   help="also print J&F after rounds 1 and the last by distance to the nearest annotated frame and "
                        "the share of poor object-frames (J&F < 0.5) per failure type")
    p.add_argument("--gt-anchors", action="store_true",
                   help="diagnostic: every annotated frame gets its ground-truth mask instead of the backend's "
                        "segmentation (the rest of the backend unchanged): how far propagation alone goes")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    root = Path(a.root)
    try:
        spec = resolve(str(root))
    except DatasetError:
        from datasets.synthetic import generate

        print(f"generating the synthetic dataset under {root} ...", flush=True)
        spec = generate(root, train=0, val=12, frames=40, height=480, width=854)
    seqs = spec.subset("val")
    if a.sequences:
        seqs = seqs[: a.sequences]
    samples = samples_of(spec, "val", seqs, a.scribbles)
    options = parse_options(a.option)
    backend = build_backend("classic", "cpu", work_size=a.work_size, **options)
    cpu_first, cpu_later = _time_rounds_in_cpu_seconds(backend)
    if a.gt_anchors:
        truth: dict[str, np.ndarray] = {}

        def ground_truth_anchor(frame: int, new_strokes: list) -> np.ndarray:
            seq = backend.sequence
            if seq not in truth:
                truth.clear()
                truth[seq] = spec.annotations(seq)
            return truth[seq][frame].astype(np.uint8)

        backend._segment = ground_truth_anchor

    reports: list[pd.DataFrame] = []
    rows: list[dict] = []
    on_round = None
    if a.breakdown:
        gts: dict[str, np.ndarray] = {}

        def on_round(rec, rr, out) -> None:
            if rr.round in (1, a.rounds):
                gt = gts.setdefault(rec.sequence, spec.annotations(rec.sequence))
                anchors = sorted({r.frame for r in rec.rounds} | {rr.frame})
                rows.extend(breakdown_rows(gt, out.masks, anchors, rr.round))
    t0 = time.perf_counter()
    records = run_episodes(spec, samples, "val", backend, WorstSelector(), a.rounds, setting="oracle",
                           on_round=on_round, on_sample=lambda rec, rep: reports.append(rep), desc="classic/worst")
    wall = time.perf_counter() - t0
    curve = curve_from_report(pd.concat(reports, ignore_index=True), a.rounds)
    first = [r.rounds[0].timings["backend"] for r in records]
    later = [rr.timings["backend"] for r in records for rr in r.rounds[1:]]
    per_round = [rr.timings["round"] for r in records for rr in r.rounds]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    T = {int(spec.sequences[s]["num_frames"]) for s in seqs}
    K = [int(spec.sequences[s]["num_objects"]) for s in seqs]
    print(f"classic (work_size {a.work_size}{''.join(f', {k}={v}' for k, v in options.items())}"
          f"{', ground-truth anchors' if a.gt_anchors else ''}), oracle-worst, {len(samples)} samples of {len(seqs)} val sequences "
          f"of {spec.root} (frames {sorted(T)}, objects {min(K)}-{max(K)}), {a.rounds} rounds")
    print("J&F per round: " + " ".join(f"{m:.3f}" for m in curve[1:]))
    print(f"round-AUC: {round_auc(curve):.4f}   J&F after round {a.rounds}: {curve[-1]:.4f}")
    print(f"backend seconds per round: first {np.mean(first):.2f} (max {np.max(first):.2f}), "
          f"later {np.mean(later):.2f} (max {np.max(later):.2f}); whole loop round {np.mean(per_round):.2f}")
    print(f"backend CPU seconds per round (this process, not disturbed by other load): first "
          f"{np.mean(cpu_first):.2f}, later {np.mean(cpu_later):.2f} (max {np.max(cpu_later):.2f})")
    print(f"peak memory (maxrss): {peak_mb:.0f} MB   wall time {wall:.0f} s, process CPU time "
          f"{usage.ru_utime + usage.ru_stime:.0f} s (wall-clock figures above include waiting for the CPU "
          f"on a loaded machine)")
    if rows:
        print_breakdown(pd.DataFrame(rows))
    return 0


def parse_options(items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> {key: int, float or str value} (backend options from the command line)."""
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            options[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            options[key] = value
    return options


def _time_rounds_in_cpu_seconds(backend) -> tuple[list[float], list[float]]:
    """Record the process CPU time of every ``backend.interact`` call, split into each video's first
    round and the later ones (wall-clock times on a shared machine also count other jobs)."""
    first: list[float] = []
    later: list[float] = []
    state = {"new": True}
    start, interact = backend.start, backend.interact

    def timed_start(*args, **kwargs):
        state["new"] = True
        return start(*args, **kwargs)

    def timed_interact(*args, **kwargs):
        t0 = time.process_time()
        out = interact(*args, **kwargs)
        (first if state["new"] else later).append(time.process_time() - t0)
        state["new"] = False
        return out

    backend.start, backend.interact = timed_start, timed_interact
    return first, later


def breakdown_rows(gt: np.ndarray, pred: np.ndarray, anchors: list[int], rnd: int) -> list[dict]:
    """One row per (frame, object): J&F (davisinteractive's metrics), distance to the nearest annotated
    frame and a failure type: ``absent`` (the object is not in the frame but predicted), ``lost``
    (in the frame, predicted nowhere), ``reentry`` (in the frame after being absent between the nearest
    anchor and this frame), ``drift`` (anything else)."""
    from datasets.davis_compat import batched_f_measure, batched_jaccard

    K = int(gt.max())
    j = batched_jaccard(gt, pred, average_over_objects=False, nb_objects=K)
    f = batched_f_measure(gt, pred, average_over_objects=False, nb_objects=K)
    present = np.stack([(gt == k).any((1, 2)) for k in range(1, K + 1)], 1)     # (T, K)
    predicted = np.stack([(pred == k).any((1, 2)) for k in range(1, K + 1)], 1)
    out = []
    for t in range(len(gt)):
        near = min(anchors, key=lambda a: abs(a - t))
        lo, hi = sorted((near, t))
        for k in range(K):
            jf = 0.5 * (j[t, k] + f[t, k])
            if not present[t, k]:
                kind = "absent"
            elif not predicted[t, k]:
                kind = "lost"
            elif not present[lo:hi + 1, k].all():
                kind = "reentry"
            else:
                kind = "drift"
            out.append({"round": rnd, "dist": abs(t - near), "jf": jf, "kind": kind})
    return out


def print_breakdown(df: pd.DataFrame) -> None:
    bins = [-1, 0, 2, 5, 10, 1000]
    labels = ["0", "1-2", "3-5", "6-10", ">10"]
    df = df.assign(band=pd.cut(df["dist"], bins, labels=labels))
    for rnd, d in df.groupby("round"):
        by = d.groupby("band", observed=True)["jf"].agg(["mean", "size"])
        print(f"round {rnd}: J&F by distance to the nearest annotated frame: "
              + "  ".join(f"{b}: {r['mean']:.3f} (n={int(r['size'])})" for b, r in by.iterrows()))
        poor = d[d["jf"] < 0.5]
        share = poor["kind"].value_counts() / max(len(d), 1)
        loss = (1 - d["jf"]).groupby(d["kind"]).sum() / max(len(d), 1)
        print(f"round {rnd}: poor object-frames (J&F < 0.5) {len(poor) / max(len(d), 1):.1%}: "
              + ", ".join(f"{k} {v:.1%}" for k, v in share.items())
              + "; J&F lost per type: " + ", ".join(f"{k} {v:.3f}" for k, v in loss.sort_values(ascending=False).items()))


if __name__ == "__main__":
    raise SystemExit(main())
