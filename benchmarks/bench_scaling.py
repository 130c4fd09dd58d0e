"""Scaling of an evaluation over Ray workers: wall time with workers=1 and workers=2, same results.

Runs ``eval_agent.py`` (classic backend, oracle ``worst``, 8 rounds) on every sample of a synthetic val
split, once in one process (``workers=1``, no Ray) and once on a local Ray instance with two workers
(``workers=2``, start-up included), into separate results folders; prints both wall times, their
ratio, and whether the two summaries agree (curve, AUC, per-sample curves, frames and ranks).

    python -m datasets.synthetic --root /tmp/scale_syn --train 0 --val 4 --frames 20 --height 240 --width 427 --seed 5
    OMP_NUM_THREADS=1 python benchmarks/bench_scaling.py --dataset /tmp/scale_syn
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def comparable(s: dict) -> dict:
    rounds = [{k: v for k, v in r.items() if not k.startswith("seconds_")} for r in s["rounds"]]
    return {"auc": s["auc"], "curve": s["curve"], "samples": s["samples"], "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/ivosw-bench-scaling")
    args = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    times, summaries = {}, {}
    for w in (1, args.workers):
        res = Path(args.out) / f"workers{w}"
        shutil.rmtree(res, ignore_errors=True)
        cmd = [sys.executable, "eval_agent.py", "with", f"dataset={args.dataset}", f"results_dir={res}",
               "method=worst", "setting=oracle", f"rounds={args.rounds}", "device=cpu", "progress=False",
               f"workers={w}"]
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        times[w] = time.perf_counter() - t
        (path,) = res.glob("*/oracle/*/worst/summary.json")
        summaries[w] = json.loads(path.read_text())
    n = summaries[1]["num_samples"]
    same = comparable(summaries[1]) == comparable(summaries[args.workers])
    print(f"{n}-sample evaluation (classic, oracle worst, {args.rounds} rounds) of {args.dataset}, "
          f"{os.cpu_count()} CPUs")
    for w, t in times.items():
        print(f"workers={w}: {t:7.1f} s wall (whole command{', Ray start-up included' if w > 1 else ''})")
    print(f"speed-up workers={args.workers} / workers=1: {times[1] / times[args.workers]:.2f}x")
    print(f"results identical (curve, AUC, per-sample curves, frames, ranks): {same}; "
          f"AUC {summaries[1]['auc']:.4f} vs {summaries[args.workers]['auc']:.4f}")


if __name__ == "__main__":
    main()
