"""Evaluation benchmark: a backend on a DAVIS-layout val split, oracle setting.

Prints, for random, linspace, worst and greedy: round-AUC, J&F after the last round, seconds per
round, and the share of each round's wall time spent outside the backend, split into the
benchmark's own cost (davisinteractive's robot and metrics: "evaluator") and this project's
(quality step, recommender, bookkeeping). Target: under 20% outside the backend.

Runs go through eval_agent.py (the same code path as a user's run; finished runs are reused):

    python benchmarks/bench_eval.py --data-dir data --results results
    python benchmarks/bench_eval.py --dataset /tmp/syn480 --sequences syn-val-000 syn-val-001 --greedy-candidates 4
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--vos", default="classic")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sequences", nargs="*", default=None, help="only these val sequences")
    ap.add_argument("--greedy-candidates", type=int, default=4)
    ap.add_argument("--methods", default="random,linspace,worst,greedy")
    ap.add_argument("--results", default="/tmp/ivosw-bench-eval", help="results_dir (reuses finished runs)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from datasets.layout import resolve
    from interaction.factory import results_path

    spec = resolve(args.dataset, args.data_dir)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for method in args.methods.split(","):
        out = results_path(args.results, args.vos, "oracle", spec.name, method) / "summary.json"
        if not out.exists():
            cmd = [sys.executable, "eval_agent.py", "with", f"vos={args.vos}", f"dataset={args.dataset}",
                   f"data_dir={args.data_dir}", f"results_dir={args.results}", "setting=oracle", f"method={method}",
                   f"rounds={args.rounds}", f"seed={args.seed}", "device=cpu",
                   f"greedy_candidates={args.greedy_candidates}"]
            if args.sequences:
                cmd.append("sequences=" + repr(list(args.sequences)))
            subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        s = json.loads(out.read_text())
        r = s["rounds"]
        mean = {k: sum(x[f"seconds_{k}"] for x in r) / len(r) for k in ("round", "backend", "evaluator")}
        rows.append((method, s, mean))
    first = rows[0][1]
    print(f"\n{args.vos} on {spec.name} val ({first['num_samples']} samples), oracle, {args.rounds} rounds")
    print(f"{'method':9s} {'AUC':>7s} {'J&F@end':>8s} {'s/round':>8s} {'outside backend':>16s} "
          f"{'of which evaluator':>19s} {'ours':>6s}")
    for method, s, m in rows:
        outside = m["round"] - m["backend"]
        print(f"{method:9s} {s['auc']:7.4f} {s['curve']['J_AND_F'][-1]:8.4f} {m['round']:8.2f} "
              f"{100 * outside / m['round']:15.1f}% {100 * m['evaluator'] / m['round']:18.1f}% "
              f"{100 * (outside - m['evaluator']) / m['round']:5.1f}%")
    print("\nJ&F per round:")
    for method, s, _ in rows:
        print(f"{method:9s} " + " ".join(f"{v:.3f}" for v in s["curve"]["J_AND_F"][1:]))
    print("(greedy's look-ahead runs the backend inside the recommender, so its share outside the backend is "
          "not comparable)" if any(m == "greedy" for m, *_ in rows) else "")


if __name__ == "__main__":
    main()
