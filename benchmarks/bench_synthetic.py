"""Generation time of the synthetic dataset: 4 sequences x 40 frames at 480x854 (target < 60 s).

    .venv/bin/python benchmarks/bench_synthetic.py [--frames 40 --height 480 --width 854 --seed 0]

Writes into a temporary folder (deleted afterwards) and prints the wall time, the per-frame cost
and a short description of what was generated. The second figure the issue asks for (spread of
next-round J&F over candidate frames with a VOS backend) needs a backend: not measured here.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.synthetic import generate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=2)
    p.add_argument("--val", type=int, default=2)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--seed", type=int, default=0)
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


if __name__ == "__main__":
    main()
