"""Kill test: SIGKILL the long-running scripts at random points, resume them, compare with an uninterrupted run.

    python benchmarks/kill_test.py --work /tmp/kill --kills 12 --seed 0

On a tiny synthetic dataset (64x96, 6 frames, classic backend) each script runs once uninterrupted
(the reference, in ``ref/``) and once in ``killed/``, where it is started, SIGKILLed after a random
delay (seeded) within its reference duration, started again, ..., and finally run to completion.
Then the outputs must be equal:

- eval_agent.py: summary.json's auc, curve, per-sample frames and curves; report.csv rows
  (without davisinteractive's wall-time ``timing`` and random ``session_id`` columns);
- produce_reward.py, pretrain_agent.py: reward.csv / pretrain.csv byte for byte;
- train_agent.py: agent.pt bit-identical, train_agent_log.csv rows;
- generate_data.py: index.csv byte for byte and every probability PNG;
- quality_assessment.py: assess_net.pt's tensors bit-identical, the history's losses.

Everything runs on CPU with one thread, where the training is deterministic. Prints one line per
kill and per comparison and exits 1 on any difference. ``--parallel`` runs the three independent
chains (eval; reward -> pretrain -> train; QA data -> QA training) side by side; ``--kill`` picks the
scripts that are killed (the others run once, as inputs); ``--quick`` uses fewer epochs.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    name: str
    script: str
    args: list[str]
    compare: str                                  # name of the comparison function
    needs: list[str] = field(default_factory=list)  # files copied from ref/ into killed/ before the first run
    outputs: list[str] = field(default_factory=list)  # what it writes (glob patterns), wiped to start over


def jobs(rounds: int, quick: bool = False) -> list[Job]:
    common = ["progress=False", "data_dir=data", "device=cpu"]
    win = ["rounds=3", "window=6"]
    e = 1 if quick else 0
    return [
        Job("eval", "eval_agent.py", [*common, "method=random", f"rounds={rounds}", "results_dir=results"], "eval",
            outputs=["results"]),
        Job("reward", "produce_reward.py", [*common, *win, f"epochs={3 - e}", "train_dir=train"], "reward",
            outputs=["train/reward.csv*"]),
        Job("pretrain", "pretrain_agent.py", [*common, *win, f"epochs={2 - e}", "train_dir=train"], "pretrain",
            needs=["train/reward.csv", "train/reward.csv.run.json"], outputs=["train/pretrain.csv*"]),
        Job("train", "train_agent.py", [*common, *win, f"epochs={3 - e}", "train_dir=train", "weights_dir=weights",
                                        "checkpoint_every=2", "prefill_updates=30", "batch_size=8"], "train",
            needs=["train/reward.csv", "train/reward.csv.run.json", "train/pretrain.csv",
                   "train/pretrain.csv.run.json"],
            outputs=["train/agent_checkpoint.pt*", "train/train_agent_log.csv", "weights/agent.pt*"]),
        Job("qadata", "generate_data.py", [*common, "rounds=3", "scribbles=[1,2]" if quick else "scribbles=[1,2,3]",
                                           "out_dir=qa"], "qadata", outputs=["qa"]),
        Job("quality", "quality_assessment.py", [*common, "qa_dir=qa", "weights_dir=weights", "train_dir=train",
                                                 f"epochs={3 - e}", "batch_size=16", "crop_size=32", "min_size=16",
                                                 "resize=[96,64]"], "quality",
            needs=["qa"], outputs=["train/quality", "weights/assess_net*"]),
    ]


def _env(work: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT),
               IVOSW_CACHE_DIR=str(work / "cache"))
    return env


def _cmd(job: Job) -> list[str]:
    return [sys.executable, str(ROOT / job.script), "with", *job.args]


def run_to_end(job: Job, cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(_cmd(job), cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{job.script} failed in {cwd} (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


def run_and_kill(job: Job, cwd: Path, env: dict, delay: float) -> bool:
    """Start, SIGKILL after ``delay`` s; True when the process was still running (a real kill)."""
    p = subprocess.Popen(_cmd(job), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True
    if p.returncode != 0:
        raise RuntimeError(f"{job.script} failed before it was killed (exit {p.returncode}):\n{p.stderr.read()[-3000:]}")
    return False


# -- comparisons: a list of differences (empty = equal) ---------------------------------------------
def _bytes(a: Path, b: Path) -> list[str]:
    if not a.is_file() or not b.is_file():
        return [f"{b} missing" if a.is_file() else f"{a} missing"]
    return [] if a.read_bytes() == b.read_bytes() else [f"{b} differs from {a}"]


def _tensors(a: Path, b: Path) -> list[str]:
    import torch

    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    x, y = x.get("model", x), y.get("model", y)
    bad = [k for k in x if k not in y or not torch.equal(x[k], y[k])]
    return [f"{b}: {len(bad)} tensors differ from {a} (e.g. {bad[:2]})"] if bad or set(x) != set(y) else []


def cmp_eval(ref: Path, got: Path) -> list[str]:
    import pandas as pd

    d = "results/classic/oracle/synthetic/random"
    a, b = (json.loads((r / d / "summary.json").read_text()) for r in (ref, got))
    out = [f"summary.json {k} differs" for k in ("auc", "curve", "final", "num_samples") if a[k] != b[k]]
    keys = ("sequence", "scribble_idx", "frames", "curve", "ranks")
    if [{k: s[k] for k in keys} for s in a["samples"]] != [{k: s[k] for k in keys} for s in b["samples"]]:
        out.append("summary.json samples (frames/curves) differ")
    ra, rb = (pd.read_csv(r / d / "report.csv").drop(columns=["timing", "session_id"]) for r in (ref, got))
    if not ra.equals(rb):
        out.append("report.csv rows differ")
    return out


def cmp_reward(ref: Path, got: Path) -> list[str]:
    return _bytes(ref / "train/reward.csv", got / "train/reward.csv")


def cmp_pretrain(ref: Path, got: Path) -> list[str]:
    return _bytes(ref / "train/pretrain.csv", got / "train/pretrain.csv")


def cmp_train(ref: Path, got: Path) -> list[str]:
    return (_tensors(ref / "weights/agent.pt", got / "weights/agent.pt")
            + _bytes(ref / "train/train_agent_log.csv", got / "train/train_agent_log.csv"))


def cmp_qadata(ref: Path, got: Path) -> list[str]:
    out = _bytes(ref / "qa/index.csv", got / "qa/index.csv")
    pngs = sorted(p.relative_to(ref / "qa") for p in (ref / "qa").rglob("*.png"))
    bad = [p for p in pngs if (got / "qa" / p).read_bytes() != (ref / "qa" / p).read_bytes()]
    if bad or len(pngs) != len(list((got / "qa").rglob("*.png"))):
        out.append(f"qa: {len(bad)} of {len(pngs)} probability maps differ")
    return out


def cmp_quality(ref: Path, got: Path) -> list[str]:
    out = _tensors(ref / "weights/assess_net.pt", got / "weights/assess_net.pt")
    ha, hb = (json.loads((r / "weights/assess_net_history.json").read_text()) for r in (ref, got))
    if [h["train_loss"] for h in ha] != [h["train_loss"] for h in hb]:
        out.append("assess_net_history.json losses differ")
    return out


COMPARE = {"eval": cmp_eval, "reward": cmp_reward, "pretrain": cmp_pretrain, "train": cmp_train,
           "qadata": cmp_qadata, "quality": cmp_quality}


def _wipe(root: Path, patterns: list[str]) -> None:
    import shutil

    for pat in patterns:
        for p in root.glob(pat):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _copy(src: Path, dst: Path) -> None:
    import shutil

    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


CHAINS = [["eval"], ["reward", "pretrain", "train"], ["qadata", "quality"]]   # each needs the one before


def run_job(job: Job, n_kills: int, rng: np.random.Generator, ref: Path, got: Path, env: dict) -> tuple[int, list[str]]:
    """Reference run, ``n_kills`` killed runs (each resuming the last), a final run; (kills, differences)."""
    duration = run_to_end(job, ref, env)
    for f in job.needs:
        _copy(ref / f, got / f)
    done_kills, attempts = 0, 0
    while done_kills < n_kills and attempts < 4 * n_kills:
        attempts += 1
        delay = float(rng.uniform(0.2, 0.85)) * duration
        if run_and_kill(job, got, env, delay):
            done_kills += 1
            print(f"{job.script}: SIGKILL after {delay:.1f} s (reference run {duration:.1f} s)", flush=True)
        else:   # it finished first: later runs would have nothing left to do, so start the chain over
            print(f"{job.script}: finished within {delay:.1f} s, before its kill; starting over", flush=True)
            _wipe(got, job.outputs)
            done_kills = 0
    run_to_end(job, got, env)
    diffs = COMPARE[job.compare](ref, got)
    print(f"{job.script}: {done_kills} kills, resumed: " + ("same outputs" if not diffs else "; ".join(diffs)),
          flush=True)
    return done_kills, [f"{job.script}: {d}" for d in diffs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (made fresh)")
    ap.add_argument("--kills", type=int, default=12, help="kills in all, spread over the killed scripts")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill delays")
    ap.add_argument("--rounds", type=int, default=4, help="eval_agent rounds")
    ap.add_argument("--kill", default="eval,reward,pretrain,train,qadata,quality",
                    help="jobs to kill (the others run once, as inputs of the next)")
    ap.add_argument("--quick", action="store_true", help="fewer epochs (the test suite's setting)")
    ap.add_argument("--parallel", action="store_true", help="run the three independent chains side by side")
    args = ap.parse_args(argv)
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    ref, got = work / "ref", work / "killed"
    env = _env(work)
    subprocess.run([sys.executable, "-m", "datasets.synthetic", "--root", str(work / "data/synthetic"), "--train", "2",
                    "--val", "2", "--frames", "6", "--height", "64", "--width", "96", "--quiet"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    for d in (ref, got):
        (d / "data").mkdir(parents=True)
        (d / "data/synthetic").symlink_to(work / "data/synthetic")
    by_name = {j.name: j for j in jobs(args.rounds, args.quick)}
    killed = [n for n in by_name if n in args.kill.split(",")]
    n_kills = {n: args.kills // len(killed) + (1 if i < args.kills % len(killed) else 0) for i, n in enumerate(killed)}
    t_start = time.perf_counter()

    def chain(names: list[str]) -> tuple[int, list[str]]:
        kills, diffs = 0, []
        for n in names:
            k, d = run_job(by_name[n], n_kills.get(n, 0), np.random.default_rng([args.seed, list(by_name).index(n)]),
                           ref, got, env)
            kills, diffs = kills + k, diffs + d
        return kills, diffs

    with ThreadPoolExecutor(len(CHAINS) if args.parallel else 1) as pool:
        results = list(pool.map(chain, CHAINS))
    kills = sum(k for k, _ in results)
    failures = [d for _, ds in results for d in ds]
    print(f"{kills} kills over {len(killed)} scripts in {time.perf_counter() - t_start:.0f} s; "
          f"{'all outputs equal the uninterrupted runs' if not failures else f'{len(failures)} differences'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
