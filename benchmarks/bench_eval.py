"""Evaluation benchmark: the classic backend on the synthetic val set, oracle setting.

Prints the round-AUC and final J&F of random, linspace, worst and greedy, and the share of
each round's wall time spent outside the backend (quality, recommender, evaluator; target < 20%).

    python benchmarks/bench_eval.py [--data-dir data] [--rounds 8] [--greedy-candidates 8] [--sequences N]

Results go to a scratch results tree (default /tmp/ivosw-bench-eval) so as not to mix with results/.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.device import resolve_device  # noqa: E402
from datasets.layout import resolve  # noqa: E402
from interaction.evaluate import evaluate  # noqa: E402
from interaction.factory import make_selector, results_path  # noqa: E402
from VOS.registry import build_backend  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--vos", default="classic")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sequences", type=int, default=0, help="only the first N val sequences (0: all)")
    ap.add_argument("--greedy-candidates", type=int, default=8)
    ap.add_argument("--methods", default="random,linspace,worst,greedy")
    ap.add_argument("--out", default="/tmp/ivosw-bench-eval")
    args = ap.parse_args()

    spec = resolve(args.dataset, args.data_dir)
    seqs = spec.subset("val")[: args.sequences or None]
    dev = resolve_device("cpu")
    rows = []
    for method in args.methods.split(","):
        backend = build_backend(args.vos, dev)
        selector = make_selector(method, "oracle", "weights/agent.pt", dev, args.greedy_candidates)
        out = results_path(args.out, args.vos, "oracle", spec.name, method)
        t0 = time.time()
        s = evaluate(spec, "val", backend, selector, out, setting="oracle", rounds=args.rounds, seed=args.seed,
                     min_nb_nodes=4, sequences=seqs, identity={"method": method, "seed": args.seed})
        per_round = s["rounds"]
        total = np.mean([r["seconds_round"] for r in per_round])
        back = np.mean([r["seconds_backend"] for r in per_round])
        rows.append((method, s["auc"], s["curve"]["J_AND_F"][-1], total, back, time.time() - t0, s["curve"]["J_AND_F"]))
    print(f"\n{args.vos} on {spec.name} val ({len(seqs)} sequences), oracle, {args.rounds} rounds")
    print(f"{'method':10s} {'round-AUC':>9s} {'J&F@last':>9s} {'s/round':>8s} {'outside backend':>16s} {'wall s':>7s}")
    for m, auc, fin, total, back, wall, _ in rows:
        print(f"{m:10s} {auc:9.4f} {fin:9.4f} {total:8.2f} {100 * (total - back) / total:15.1f}% {wall:7.0f}")
    print("\nJ&F per round:")
    for m, *_, curve in rows:
        print(f"{m:10s} " + " ".join(f"{v:.3f}" for v in curve[1:]))


if __name__ == "__main__":
    main()
