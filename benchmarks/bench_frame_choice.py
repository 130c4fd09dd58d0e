"""How much the choice of the next frame matters: spread of next-round J&F over every candidate frame.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_frame_choice.py --root /tmp/syn [--sequences 6] [--scribbles 1] [--after 1 3]

Runs the project's interaction loop (:func:`interaction.loop.run_episodes`, ``setting='oracle'``)
with the ``classic`` backend and a selector that follows the oracle-worst rule but, after each
round listed in ``--after``, first tries every candidate frame with the loop's oracle look-ahead
(``ctx.try_frames``: the robot scribbles on the candidate against the current result, the backend
runs one round on a copy of its state, the video's object-weighted J&F is scored). Per sample and
round it records the candidates' next-round J&F and prints, averaged over samples: the spread
(max - min), the standard deviation, the gain of the best candidate over the worst-frame choice
(max - J&F after annotating the oracle-worst frame) and over the median candidate, and how often
the worst frame is the best candidate. A dataset on which these spreads are tiny does not test
frame recommendation.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.selection import select_worst  # noqa: E402
from datasets.layout import DatasetError, resolve  # noqa: E402
from interaction.evaluate import samples_of  # noqa: E402
from interaction.loop import RoundContext, run_episodes  # noqa: E402
from VOS.registry import build_backend  # noqa: E402


@dataclass
class RecordingWorst:
    """Oracle-worst selector that, after the rounds in ``after``, scores every ``stride``-th frame
    (plus the worst one) with the look-ahead and keeps the scores."""

    after: tuple[int, ...]
    stride: int = 1
    name: str = "worst+lookahead"
    needs_quality: bool = True
    rows: list[dict] = field(default_factory=list)

    def __call__(self, ctx: RoundContext) -> int:
        worst = select_worst(ctx.quality, ctx.annotated)
        if ctx.round in self.after:
            cands = sorted(set(range(0, ctx.num_frames, self.stride)) | {worst})
            scores = np.asarray(ctx.try_frames(cands), dtype=np.float64)
            self.rows.append({"round": ctx.round, "candidates": cands, "scores": scores,
                              "worst": float(scores[cands.index(worst)]), "worst_frame": worst})
        return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/synthetic", help="synthetic DAVIS-layout root (generated if missing)")
    p.add_argument("--sequences", type=int, default=0, help="use only the first N val sequences (0 = all)")
    p.add_argument("--scribbles", type=int, nargs="*", default=None, help="initial scribble indices (default all)")
    p.add_argument("--after", type=int, nargs="+", default=[1, 3], help="rounds after which every frame is tried")
    p.add_argument("--stride", type=int, default=1, help="try every stride-th frame (1 = all)")
    p.add_argument("--work-size", type=int, default=432)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        spec = resolve(a.root)
    except DatasetError:
        from datasets.synthetic import generate

        print(f"generating the synthetic dataset under {a.root} ...", flush=True)
        spec = generate(a.root, train=0, val=12, frames=40, height=480, width=854)
    seqs = spec.subset("val")[: a.sequences or None]
    samples = samples_of(spec, "val", seqs, a.scribbles)
    sel = RecordingWorst(tuple(a.after), a.stride)
    backend = build_backend("classic", "cpu", work_size=a.work_size)
    t0 = time.perf_counter()
    run_episodes(spec, samples, "val", backend, sel, max(a.after) + 1, setting="oracle", desc="frame choice")
    wall = time.perf_counter() - t0
    print(f"classic, oracle look-ahead over every {'' if a.stride == 1 else f'{a.stride}th '}frame, "
          f"{len(samples)} samples of {len(seqs)} val sequences of {spec.root}")
    for r in a.after:
        rows = [x for x in sel.rows if x["round"] == r]
        if not rows:
            continue
        spread = np.array([x["scores"].max() - x["scores"].min() for x in rows])
        std = np.array([x["scores"].std() for x in rows])
        gain_worst = np.array([x["scores"].max() - x["worst"] for x in rows])
        gain_median = np.array([x["scores"].max() - np.median(x["scores"]) for x in rows])
        worst_best = np.mean([x["worst"] >= x["scores"].max() - 1e-9 for x in rows])
        mean_score = np.mean([x["scores"].mean() for x in rows])
        print(f"after round {r} (next-round J&F over candidates; mean over {len(rows)} samples, mean candidate "
              f"{mean_score:.3f}):")
        print(f"  max - min {spread.mean():.3f} (median {np.median(spread):.3f}, max {spread.max():.3f})   "
              f"std {std.mean():.3f}")
        print(f"  max - worst-frame choice {gain_worst.mean():.3f} (median {np.median(gain_worst):.3f})   "
              f"max - median candidate {gain_median.mean():.3f}   worst frame is the best candidate in "
              f"{worst_best:.0%}")
    print(f"wall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
