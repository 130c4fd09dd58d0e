"""How good ``classic``'s annotated frames are: the frame the strokes are drawn on, before and after a correction.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diag_classic_anchor.py --root /tmp/classic/comp1 [--option k=v]

For every val sequence (initial scribble file ``--scribble``): round 1 on the scribble's frame, then,
each on a copy of the backend's state (:meth:`VOS.base.VOSBackend.trial`), one robot correction
(davisinteractive's ``InteractiveScribblesRobot``, as the session draws it) on the round-1 result's
worst frame and on its median frame. Prints the J&F of each of these frames (J&F over the objects,
the benchmark's definitions), the whole video's J&F after each, and how the error pixels of the
corrected frames split into missed object pixels and false ones. With ground-truth anchors the
oracle-worst benchmark reaches J&F 0.92 after round 8 on the seed-1 composite set against 0.80 with
the backend's own (``bench_classic.py``): the annotated frames are where most of the loss starts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_classic import parse_options  # noqa: E402
from datasets.layout import resolve  # noqa: E402
from interaction.loop import score_masks  # noqa: E402
from VOS.classic import ClassicBackend  # noqa: E402


def frame_jf(gt: np.ndarray, pred: np.ndarray, K: int) -> np.ndarray:
    """(T,) mean over objects of (J + F) / 2 per frame."""
    j, f = score_masks(gt, pred.astype(np.int64), K)
    return 0.5 * (j + f).mean(1)


def main(argv: list[str] | None = None) -> int:
    from davisinteractive.robot import InteractiveScribblesRobot

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--sequences", type=int, default=0)
    p.add_argument("--scribble", type=int, default=1)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    spec = resolve(a.root)
    seqs = spec.subset("val")[: a.sequences or None]
    options = parse_options(a.option)
    robot = InteractiveScribblesRobot()
    rows = []
    for seq in seqs:
        frames, gt = spec.frames(seq), spec.annotations(seq)
        K = int(spec.sequences[seq]["num_objects"])
        scr = spec.scribble(seq, a.scribble)
        f0 = next(t for t, s in enumerate(scr["scribbles"]) if s)
        backend = ClassicBackend(**options)
        backend.start(frames, K, seq)
        out = backend.interact(f0, scr)
        jf1 = frame_jf(gt, out.masks, K)
        row = {"seq": seq, "anchor_r1": jf1[f0], "video_r1": jf1.mean()}
        order = np.argsort(jf1)
        for tag, t in (("worst", int(order[0])), ("median", int(order[len(order) // 2]))):
            corr = robot.interact(seq, out.masks, gt, nb_objects=K, frame=t)
            with backend.trial():
                o2 = backend.interact(t, corr)
            jf2 = frame_jf(gt, o2.masks, K)
            fg_gt, fg_pr = gt[t] > 0, o2.masks[t] > 0
            wrong = gt[t] != o2.masks[t]
            n_obj = max(int(fg_gt.sum()), 1)
            row |= {f"{tag}_before": jf1[t], f"{tag}_after": jf2[t], f"{tag}_video": jf2.mean(),
                    f"{tag}_missed": float((wrong & fg_gt).sum()) / n_obj,
                    f"{tag}_false": float((wrong & ~fg_gt & fg_pr).sum()) / n_obj}
        rows.append(row)
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{v}" for k, v in row.items()), flush=True)
    keys = [k for k in rows[0] if k != "seq"]
    print(f"mean over {len(rows)} sequences ({', '.join(f'{k}={v}' for k, v in options.items()) or 'defaults'}):")
    print("  " + "  ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
