"""The whole method on built-in defaults: no GPU, no DAVIS, no downloaded weights.

    python demo.py                 # what `make demo` runs
    python demo.py --scale tiny    # the same pipeline in a minute (what the test suite runs)

Steps, each the exact command a user would type (printed before it runs):
  1. the realistic DAVIS-layout dataset (real footage, real objects with exact masks, composited;
     README, 'Data')                           python -m datasets.composite ...
     (--dataset synthetic: the textured-shapes world instead, python -m datasets.synthetic ...)
  2. agent: rewards, pre-training, DQN          produce_reward.py, pretrain_agent.py, train_agent.py
     beside it, quality assessment: data, training   generate_data.py, quality_assessment.py
  3. evaluation on its val split: random, linspace, worst, ours in both settings, greedy in oracle   eval_agent.py
  4. results table and curves                   results_table.py
Independent steps run side by side, two at a time (--jobs); their output goes to logs/.
Every step reuses what an earlier run produced (the scripts resume and skip finished work), so a
second `make demo` only re-renders the table.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


class Runner:
    """Runs the steps' commands. With one job, output streams live; with more, independent steps
    run side by side (one per core: each step is mostly single-threaded) and each one's output goes
    to ``logs/<name>.log``, with a line when it starts and when it ends."""

    def __init__(self, env: dict[str, str], jobs: int, logs: Path):
        self.env, self.jobs, self.logs = env, jobs, logs
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def run(self, name: str, cmd: list[str]) -> None:
        shown = " ".join(shlex.quote(c) for c in cmd).replace(shlex.quote(sys.executable), "python")
        t0 = time.time()
        if self.jobs == 1:
            self.say(f"\n$ {shown}")
            subprocess.run(cmd, cwd=ROOT, env=self.env, check=True)
        else:
            log = self.logs / f"{name.replace(' ', '_').replace('/', '-')}.log"
            self.say(f"$ {shown}   > {log}")
            with open(log, "w") as fh:
                done = subprocess.run(cmd, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
            lines = log.read_text(errors="replace").splitlines()
            if done.returncode != 0:
                self.say("\n".join(lines[-30:]))
                raise subprocess.CalledProcessError(done.returncode, cmd)
            result = [ln for ln in lines if "summary.json:" in ln or ln.startswith("train/") or ".csv:" in ln]
            self.say(f"  done: {name} ({time.time() - t0:.0f} s)" + (f"  {result[-1]}" if result else ""))
        self.times[name] = time.time() - t0

    def chain(self, steps: list[tuple[str, list[str]]]) -> None:
        for name, cmd in steps:
            self.run(name, cmd)

    def parallel(self, groups: list[list[tuple[str, list[str]]]]) -> None:
        """Each group runs in order; groups run side by side, ``jobs`` at a time."""
        if self.jobs == 1:
            for g in groups:
                self.chain(g)
            return
        with ThreadPoolExecutor(self.jobs) as pool:
            for f in [pool.submit(self.chain, g) for g in groups]:
                f.result()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="demo")
    ap.add_argument("--work-dir", default=".", help="where data/, train/, weights/, results/ go")
    ap.add_argument("--dataset", choices=("composite", "synthetic"), default="composite",
                    help="composite: real imagery composited (default); synthetic: textured shapes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="steps run side by side (default: up to 2); 1 streams every step's output live")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    sc = SCALES[args.scale]
    work = Path(args.work_dir).resolve()
    data, train, weights, results, logs = (work / d for d in ("data", "train", "weights", "results", "logs"))
    logs.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Small CPU networks thrash with more threads than cores; one BLAS thread per process.
    env.setdefault("OMP_NUM_THREADS", "1")
    runner = Runner(env, max(1, args.jobs), logs)
    common = [f"data_dir={data}", f"device={args.device}", f"progress={not args.no_progress and args.jobs == 1}"]
    ds = f"dataset={args.dataset}"   # every script that reads the dataset (quality_assessment.py reads the maps)
    t_start = time.time()

    syn = data / args.dataset
    if (syn / "metadata.json").exists():
        print(f"\n[1/4] {args.dataset} dataset: reusing {syn}")
    else:
        print(f"\n[1/4] {args.dataset} dataset")
        runner.run("data", [py, "-m", f"datasets.{args.dataset}", "--root", str(syn), "--train", str(sc.train),
                            "--val", str(sc.val), "--frames", str(sc.frames), "--height", str(sc.height),
                            "--width", str(sc.width), "--seed", str(args.seed)])

    print("\n[2/4] training: the agent (rewards, pre-training buffer, DQN) and the QA network (maps, training)",
          flush=True)
    agent = [("produce_reward", [py, "produce_reward.py", "with", *common, ds, f"train_dir={train}",
                                 f"epochs={sc.reward_epochs}"]),
             ("pretrain_agent", [py, "pretrain_agent.py", "with", *common, ds, f"train_dir={train}",
                                 f"epochs={sc.pretrain_epochs}"]),
             ("train_agent", [py, "train_agent.py", "with", *common, ds, f"train_dir={train}", f"weights_dir={weights}",
                              f"epochs={sc.agent_epochs}"])]
    qa = [("generate_data", [py, "generate_data.py", "with", *common, ds]),
          ("quality_assessment", [py, "quality_assessment.py", "with", *common, f"weights_dir={weights}",
                                  f"train_dir={train}", f"epochs={sc.qa_epochs}"])]
    runner.parallel([agent, qa])

    print(f"\n[3/4] evaluation on the {args.dataset} val split", flush=True)
    evals = []
    for setting, method in METHODS:
        extra = [f"greedy_candidates={sc.greedy_candidates}"] if method == "greedy" else []
        if setting == "wild" and method in ("random", "linspace"):
            extra.append("qa_record=False")   # same frames as in oracle; the QA net is scored by worst and ours
        evals.append([(f"eval {setting}/{method}",
                       [py, "eval_agent.py", "with", *common, ds, f"weights_dir={weights}", f"results_dir={results}",
                        f"setting={setting}", f"method={method}", f"rounds={sc.rounds}", f"seed={args.seed}",
                        *extra])])
    evals.sort(key=lambda g: "greedy" not in g[0][0])   # the longest first
    runner.parallel(evals)

    print("\n[4/4] results", flush=True)
    subprocess.run([py, "results_table.py", "--root", str(results)], cwd=ROOT, env=env, check=True)
    total = time.time() - t_start
    print("\nseconds per step: " + ", ".join(f"{k} {v:.0f}" for k, v in runner.times.items()))
    print(f"demo finished in {total / 60:.1f} min. Everything is under {work}: data/{args.dataset} (dataset), "
          f"train/ (reward.csv, pretrain.csv), weights/ (agent.pt, assess_net.pt), "
          f"results/ (summary.json per run, table.md, curves_*.png), logs/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
