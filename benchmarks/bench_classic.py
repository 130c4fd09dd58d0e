"""Speed and quality of the ``classic`` backend: oracle-worst, 8 rounds, real davisinteractive session.

    .venv/bin/python benchmarks/bench_classic.py --root data/synthetic [--sequences 4] [--rounds 8]

Prints J&F per round (the session's object-weighted curve), the round-AUC (PROTOCOL.md section 4),
seconds per round (first round, which includes the optical flow, and later rounds separately) and
the peak resident memory. Generates the synthetic dataset (40 frames, 480x854) under ``--root``
first if it is missing.

TODO(integrator): this stand-alone version drives DavisInteractiveSession itself with the
oracle-worst rule written out below; switch it to ``interaction.loop.run_episodes`` once the
interaction loop exists, so there is one copy of the round loop.
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.davis_compat import DavisInteractiveSession, annotated_frames, batched_f_measure, batched_jaccard  # noqa: E402
from datasets.layout import DatasetError, registered, resolve  # noqa: E402
from VOS.registry import build_backend  # noqa: E402


def frame_quality(gt: np.ndarray, masks: np.ndarray, num_objects: int) -> np.ndarray:
    """(T,) ground-truth J&F per frame, averaged over objects (the oracle setting's quality)."""
    j = batched_jaccard(gt, masks, average_over_objects=True, nb_objects=num_objects)
    f = batched_f_measure(gt, masks, average_over_objects=True, nb_objects=num_objects)
    return (j + f) / 2


def worst_frame(quality: np.ndarray, annotated: list[int]) -> int:
    """The lowest-quality frame not annotated yet (global arg-min when all are annotated)."""
    q = quality.astype(np.float64).copy()
    q[list(set(annotated))] = np.inf
    return int(np.argmin(q)) if np.isfinite(q).any() else int(np.argmin(quality))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/synthetic", help="synthetic DAVIS-layout root (generated if missing)")
    p.add_argument("--sequences", type=int, default=0, help="use only the first N val sequences (0 = all)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--work-size", type=int, default=432, help="classic backend working resolution (longest side)")
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
    backend = build_backend("classic", "cpu", work_size=a.work_size)

    first_round: list[float] = []
    later_rounds: list[float] = []
    with registered(spec, seqs, "val") as subset, tempfile.TemporaryDirectory() as report_dir:
        with DavisInteractiveSession(host="localhost", davis_root=str(spec.root), subset=subset,
                                     max_nb_interactions=a.rounds, max_time=None,
                                     metric_to_optimize="J_AND_F", report_save_dir=report_dir) as sess:
            gt = frames = None
            annotated: list[int] = []
            requested = 0
            while sess.next():
                seq, scribbles, first = sess.get_scribbles(only_last=True)
                if first:
                    frames, gt = spec.frames(seq), spec.annotations(seq)
                    K = spec.sequences[seq]["num_objects"]
                    backend.start(frames, K, sequence=seq)
                    annotated = []
                    drawn = annotated_frames(scribbles)
                    requested = drawn[0] if drawn else 0
                out = backend.interact(requested, scribbles)
                (first_round if first else later_rounds).append(out.timings["total"])
                annotated.append(requested)
                requested = worst_frame(frame_quality(gt, out.masks, K), annotated)
                sess.submit_masks(out.masks, next_scribble_frame_candidates=[requested])
            summary = sess.get_global_summary()

    curve = list(summary["curve"]["J_AND_F"])[:-1]   # [0, m1, ..., mR] without the trailing repeat
    auc = float(np.trapezoid(curve) / (len(curve) - 1))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"classic, oracle-worst, {len(seqs)} val sequences of {spec.root} ({a.rounds} rounds)")
    print("J&F per round: " + " ".join(f"{m:.3f}" for m in curve[1:]))
    print(f"round-AUC: {auc:.4f}   J&F after round {a.rounds}: {curve[-1]:.4f}")
    print(f"seconds per round: first {np.mean(first_round):.2f} (max {np.max(first_round):.2f}), "
          f"later {np.mean(later_rounds):.2f} (max {np.max(later_rounds):.2f})")
    print(f"peak memory: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"wall time: {time.perf_counter() - t0:.0f} s")
    raise SystemExit(code)
