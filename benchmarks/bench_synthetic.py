"""Generation time of the synthetic dataset: 4 sequences x 40 frames at 480x854 (target < 60 s).

    .venv/bin/python benchmarks/bench_synthetic.py [--frames 40 --height 480 --width 854 --seed 0]

Writes into a temporary folder (deleted afterwards) and prints the wall time, the per-frame cost
and a short description of what was generated; then the motion statistics of ``--stats N`` val
sequences (default 8; 0 skips): per-frame centroid displacement (median, 90th percentile, max, in
px at 854 px width), fractions of object-frames partly / fully out of the frame and partly / fully
occluded, and the visible object area. The spread of next-round J&F over candidate frames is
``benchmarks/bench_frame_choice.py``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.synthetic import generate, sequence_statistics, summarize_statistics  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=2)
    p.add_argument("--val", type=int, default=2)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats", type=int, default=8, help="val sequences to measure motion on (0: skip)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        spec = generate(Path(tmp) / "synthetic", a.train, a.val, a.frames, a.height, a.width, a.seed, progress=False)
        dt = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    n_seq = len(spec.sequences)
    n_obj = sum(m["num_objects"] for m in spec.sequences.values())
    print(f"synthetic generation: {n_seq} sequences x {a.frames} frames at {a.height}x{a.width}, "
          f"{n_obj} objects, {size / 1e6:.1f} MB")
    print(f"  wall time {dt:.1f} s ({1000 * dt / (n_seq * a.frames):.0f} ms per frame incl. robot scribbles); "
          f"target < 60 s: {'met' if dt < 60 else 'MISSED'}")

    if a.stats:
        import logging

        logging.getLogger("absl").setLevel(logging.WARNING)
        st = summarize_statistics([sequence_statistics(a.seed, "val", i, a.frames, a.height, a.width)
                                   for i in range(a.stats)])
        print(f"motion of {a.stats} val sequences ({a.frames} frames at {a.height}x{a.width}), px per frame at 854 width:")
        print(f"  centroid displacement median {st['disp_median']:.1f}, p90 {st['disp_p90']:.1f}, max {st['disp_max']:.0f}")
        print(f"  object-frames partly out {st['partly_out']:.1%}, fully out {st['fully_out']:.1%}, "
              f"partly occluded (>10%) {st['occluded']:.1%}, fully occluded {st['fully_occluded']:.1%}")
        print(f"  visible area (fraction of frame) median {st['area_median']:.1%}, "
              f"p10 {st['area_p10']:.1%}, p90 {st['area_p90']:.1%}")


if __name__ == "__main__":
    main()
