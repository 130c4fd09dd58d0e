"""How much one propagation step of ``classic`` loses, started from the ground truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diag_classic_warp.py --root /tmp/classic/comp1 [--sequences 6]

For every val sequence, frame pair (t, t+1) and object present in both (at least 20 pixels at the
working resolution), the ground-truth mask of frame t is moved to t+1 the way the backend's chain moves
its state (:meth:`VOS.classic.ClassicBackend._warp_object`: a similarity fitted to the DIS flow, the
dense backward warp when none fits) and, separately, put through a whole chain step
(:meth:`VOS.classic.ClassicBackend._step_labels`: the warp and the per-frame GrabCut refinement). Prints the mean IoU with the ground truth of t+1 by
motion (centroid shift over 8 working pixels = ``fast``: the generator's bursts) and occlusion
(another object within 7 pixels in t+1 covering over 5 % of the object's area), with the IoU of
not moving the mask at all beside it. A chain of n steps compounds these losses.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.layout import resolve  # noqa: E402
from VOS.classic import ClassicBackend, _resize  # noqa: E402


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = int((a | b).sum())
    return 1.0 if u == 0 else float((a & b).sum()) / u


def sequence_rows(backend: ClassicBackend, frames: np.ndarray, gt: np.ndarray) -> list[dict]:
    K = int(gt.max())
    backend.start(frames, max(K, 1))
    fc = backend.flow()
    h, w = backend.work_hw
    g = [_resize(x, (h, w), nearest=True) for x in gt]
    rows = []
    for t in range(len(frames) - 1):
        step, _ = backend._step_labels(g[t], backend.small[t + 1], fc.fwd[t], fc.cfwd[t], fc.bwd[t])
        for k in range(1, K + 1):
            m, n = g[t] == k, g[t + 1] == k
            if m.sum() < 20 or n.sum() < 20:
                continue
            moved, M = backend._warp_object(m, fc.fwd[t], fc.cfwd[t], fc.bwd[t])
            warped = moved > 0.5
            near = cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
            other = (g[t + 1] > 0) & (g[t + 1] != k)
            ys, xs = np.nonzero(m)
            ys2, xs2 = np.nonzero(n)
            rows.append({"fast": bool(np.hypot(xs2.mean() - xs.mean(), ys2.mean() - ys.mean()) > 8),
                         "occluded": bool((other & near).sum() > 0.05 * m.sum()),
                         "warp": iou(warped, n), "step": iou(step == k, n), "no motion": iou(m, n),
                         "rigid fit": M is not None})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="a DAVIS-layout root with a val split")
    p.add_argument("--sequences", type=int, default=0, help="only the first N val sequences (0 = all)")
    p.add_argument("--work-size", type=int, default=432)
    a = p.parse_args(argv)
    spec = resolve(a.root)
    seqs = spec.subset("val")
    seqs = seqs[: a.sequences] if a.sequences else seqs
    backend = ClassicBackend(work_size=a.work_size)
    rows = []
    for s in seqs:
        rows += sequence_rows(backend, spec.frames(s), spec.annotations(s))
    df = pd.DataFrame(rows)
    print(f"one chain step from the ground truth, {len(df)} object-frame pairs of {len(seqs)} val sequences of {spec.root}")
    table = df.groupby(["fast", "occluded"]).agg(n=("warp", "size"), warp=("warp", "mean"), step=("step", "mean"),
                                                   no_motion=("no motion", "mean"), rigid_fit=("rigid fit", "mean"))
    print(table.round(3).to_string())
    print(f"all: warp {df['warp'].mean():.3f}, warp + refinement {df['step'].mean():.3f}, "
          f"not moved {df['no motion'].mean():.3f}; IoU lost per type (sum of 1 - step IoU / pairs): "
          + ", ".join(f"{'fast' if f else 'slow'}/{'occluded' if o else 'clear'} {v:.3f}"
                      for (f, o), v in ((1 - df["step"]).groupby([df["fast"], df["occluded"]]).sum() / len(df)).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
