"""The whole method on built-in defaults: no GPU, no DAVIS, no downloaded weights.

    python demo.py                 # what `make demo` runs
    python demo.py --scale tiny    # the same pipeline in a minute (what the test suite runs)

Steps, each the exact command a user would type (printed before it runs):
  1. synthetic DAVIS-layout dataset            python -m datasets.synthetic ...
  2. agent: rewards, pre-training, DQN          produce_reward.py, pretrain_agent.py, train_agent.py
  3. quality assessment: data, training         generate_data.py, quality_assessment.py
  4. evaluation: random, linspace, worst, ours in both settings, greedy in oracle   eval_agent.py
  5. results table and curves                   results_table.py
Every step reuses what an earlier run produced (the scripts resume and skip finished work), so a
second `make demo` only re-renders the table.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scale:
    train: int            # synthetic train sequences
    val: int              # synthetic val sequences
    frames: int
    height: int
    width: int
    reward_epochs: int    # produce_reward.py (published 30)
    pretrain_epochs: int  # pretrain_agent.py (published 10)
    agent_epochs: int     # train_agent.py (published 5)
    qa_epochs: int        # quality_assessment.py (published 50)
    rounds: int           # evaluation rounds (published 8)
    greedy_candidates: int


SCALES = {
    "demo": Scale(train=6, val=3, frames=20, height=192, width=341, reward_epochs=3, pretrain_epochs=2,
                  agent_epochs=2, qa_epochs=3, rounds=8, greedy_candidates=4),
    "tiny": Scale(train=2, val=1, frames=6, height=64, width=96, reward_epochs=2, pretrain_epochs=1,
                  agent_epochs=1, qa_epochs=1, rounds=3, greedy_candidates=3),
}

METHODS = [("oracle", "random"), ("oracle", "linspace"), ("oracle", "worst"), ("oracle", "ours"),
           ("oracle", "greedy"), ("wild", "random"), ("wild", "linspace"), ("wild", "worst"), ("wild", "ours")]


def run(cmd: list[str], env: dict[str, str]) -> float:
    shown = " ".join(shlex.quote(c) for c in cmd).replace(shlex.quote(sys.executable), "python")
    print(f"\n$ {shown}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return time.time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="demo")
    ap.add_argument("--work-dir", default=".", help="where data/, train/, weights/, results/ go")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    sc = SCALES[args.scale]
    work = Path(args.work_dir).resolve()
    data, train, weights, results = (work / d for d in ("data", "train", "weights", "results"))
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Small CPU networks thrash with more threads than cores under load; one BLAS thread per process.
    env.setdefault("OMP_NUM_THREADS", "1")
    progress = f"progress={not args.no_progress}"
    common = [f"data_dir={data}", f"device={args.device}", progress]
    times: dict[str, float] = {}
    t_start = time.time()

    syn = data / "synthetic"
    if (syn / "metadata.json").exists():
        print(f"\n[1/5] synthetic dataset: reusing {syn}")
    else:
        print("\n[1/5] synthetic dataset")
        times["data"] = run([py, "-m", "datasets.synthetic", "--root", str(syn), "--train", str(sc.train),
                             "--val", str(sc.val), "--frames", str(sc.frames), "--height", str(sc.height),
                             "--width", str(sc.width), "--seed", str(args.seed)], env)

    print("\n[2/5] agent: random-policy rewards, pre-training buffer, DQN")
    times["produce_reward"] = run([py, "produce_reward.py", "with", *common, f"train_dir={train}",
                                   f"epochs={sc.reward_epochs}"], env)
    times["pretrain_agent"] = run([py, "pretrain_agent.py", "with", *common, f"train_dir={train}",
                                   f"epochs={sc.pretrain_epochs}"], env)
    times["train_agent"] = run([py, "train_agent.py", "with", *common, f"train_dir={train}",
                                f"weights_dir={weights}", f"epochs={sc.agent_epochs}"], env)

    print("\n[3/5] quality assessment: training maps, network")
    times["generate_data"] = run([py, "generate_data.py", "with", *common], env)
    times["quality_assessment"] = run([py, "quality_assessment.py", "with", *common, f"weights_dir={weights}",
                                       f"epochs={sc.qa_epochs}"], env)

    print("\n[4/5] evaluation on the synthetic val split")
    for setting, method in METHODS:
        extra = [f"greedy_candidates={sc.greedy_candidates}"] if method == "greedy" else []
        times[f"eval {setting}/{method}"] = run(
            [py, "eval_agent.py", "with", *common, f"weights_dir={weights}", f"results_dir={results}",
             f"setting={setting}", f"method={method}", f"rounds={sc.rounds}", f"seed={args.seed}", *extra], env)

    print("\n[5/5] results")
    run([py, "results_table.py", "--root", str(results)], env)
    total = time.time() - t_start
    print("\nseconds per step: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    print(f"demo finished in {total / 60:.1f} min. Everything is under {work}: data/synthetic (dataset), "
          f"train/ (reward.csv, pretrain.csv), weights/ (agent.pt, assess_net.pt), "
          f"results/ (summary.json per run, table.md, curves_*.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
