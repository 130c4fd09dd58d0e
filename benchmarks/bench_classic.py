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
    backend = build_backend("classic", "cpu", work_size=a.work_size)

    reports: list[pd.DataFrame] = []
    t0 = time.perf_counter()
    records = run_episodes(spec, samples, "val", backend, WorstSelector(), a.rounds, setting="oracle",
                           on_sample=lambda rec, rep: reports.append(rep), desc="classic/worst")
    wall = time.perf_counter() - t0
    curve = curve_from_report(pd.concat(reports, ignore_index=True), a.rounds)
    first = [r.rounds[0].timings["backend"] for r in records]
    later = [rr.timings["backend"] for r in records for rr in r.rounds[1:]]
    per_round = [rr.timings["round"] for r in records for rr in r.rounds]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    T = {int(spec.sequences[s]["num_frames"]) for s in seqs}
    K = [int(spec.sequences[s]["num_objects"]) for s in seqs]
    print(f"classic (work_size {a.work_size}), oracle-worst, {len(samples)} samples of {len(seqs)} val sequences "
          f"of {spec.root} (frames {sorted(T)}, objects {min(K)}-{max(K)}), {a.rounds} rounds")
    print("J&F per round: " + " ".join(f"{m:.3f}" for m in curve[1:]))
    print(f"round-AUC: {round_auc(curve):.4f}   J&F after round {a.rounds}: {curve[-1]:.4f}")
    print(f"backend seconds per round: first {np.mean(first):.2f} (max {np.max(first):.2f}), "
          f"later {np.mean(later):.2f} (max {np.max(later):.2f}); whole loop round {np.mean(per_round):.2f}")
    print(f"peak memory (maxrss): {peak_mb:.0f} MB   wall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
