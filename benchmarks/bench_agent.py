"""Agent benchmark: train the agent on the synthetic train split, evaluate on val, over seeds.

For each seed: pretrain buffer and DQN training (interaction.training_runs, the same functions as
pretrain_agent.py / train_agent.py) with the classic backend on train, then round-AUC on val of
random, linspace, worst, ours (and greedy) in oracle, and in wild when QA weights exist. Prints
mean +- std over seeds, the mean ground-truth rank of the chosen frames (0 = the worst frame,
relative to the video length) and how often ``ours`` re-annotates a frame.

    python benchmarks/bench_agent.py [--seeds 0,1,2] [--data-dir data] [--settings oracle,wild]

reward.csv (the random runs that define the goal reward's statistics) is produced once and shared
by the seeds; the seeds change the pretrain buffer, the agent's initialisation and exploration,
and the random method. linspace, worst and greedy do not depend on the seed (the classic backend
and the robot are deterministic): they run once. Everything resumes (rerun the same command).
Scratch output under --work (default /tmp/ivosw-bench-agent).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agent.dqn import DEFAULT_LR  # noqa: E402
from agent.records import read_records  # noqa: E402
from agent.rewards import RewardStats  # noqa: E402
from agent.training import load_prefill  # noqa: E402
from datasets.layout import DatasetError, resolve  # noqa: E402
from interaction.evaluate import evaluate, samples_of  # noqa: E402
from interaction.factory import make_quality_fn, make_selector  # noqa: E402
from interaction.training_runs import collect_episodes, train_dqn  # noqa: E402
from VOS.registry import build_backend  # noqa: E402

DETERMINISTIC = {"linspace", "worst", "greedy"}


def _spec(args):
    try:
        return resolve(args.dataset, args.data_dir)
    except DatasetError:
        if args.dataset != "synthetic":
            raise
        from datasets import synthetic

        root = Path(args.work) / "data" / "synthetic"
        if not (root / "metadata.json").exists():
            synthetic.main(["--root", str(root), "--train", str(args.gen_train), "--val", str(args.gen_val),
                            "--frames", str(args.gen_frames), "--height", str(args.gen_height),
                            "--width", str(args.gen_width), "--seed", "0", "--quiet"])
        return resolve("synthetic", Path(args.work) / "data")


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def main() -> None:
    args = sys.argv[1:]
    if "--agent" in args and args[args.index("--agent") + 1: args.index("--agent") + 2] == ["v2"]:
        i = args.index("--agent")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_agent_v2 import main as main_v2

        return main_v2(args[:i] + args[i + 2:])
    return main_dqn()


def main_dqn() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default="dqn", choices=["dqn", "v2"], help="dqn: the published MDP and DQN "
                    "(this function); v2: the imitation agent (benchmarks/bench_agent_v2.py)")
    ap.add_argument("--data-dir", default="data", help="holds synthetic/ (generated under --work if missing)")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--vos", default="classic")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--settings", default="oracle,wild")
    ap.add_argument("--methods", default="random,linspace,worst,ours")
    ap.add_argument("--greedy-candidates", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=8, help="evaluation rounds")
    ap.add_argument("--train-rounds", type=int, default=5)
    ap.add_argument("--window", type=int, default=25)
    ap.add_argument("--reward-epochs", type=int, default=8, help="random runs per sample for the goal statistics")
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--train-epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam learning rate (published 5e-6)")
    ap.add_argument("--prefill-updates", type=int, default=1000,
                    help="updates on the pre-filled replay before the episodes (published 0)")
    ap.add_argument("--train-sequences", type=int, default=0, help="first N train sequences (0: all)")
    ap.add_argument("--val-sequences", type=int, default=0, help="first N val sequences (0: all)")
    ap.add_argument("--min-nb-nodes", type=int, default=4)
    ap.add_argument("--qa-weights", default="weights/assess_net.pt")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the agent's net is tiny)")
    ap.add_argument("--work", default="/tmp/ivosw-bench-agent")
    ap.add_argument("--gen-train", type=int, default=12)
    ap.add_argument("--gen-val", type=int, default=6)
    ap.add_argument("--gen-frames", type=int, default=40)
    ap.add_argument("--gen-height", type=int, default=120)
    ap.add_argument("--gen-width", type=int, default=200)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    work = Path(args.work)
    spec = _spec(args)
    train_seqs = spec.subset("train")[: args.train_sequences or None]
    val_seqs = spec.subset("val")[: args.val_sequences or None]
    train_samples = samples_of(spec, "train", train_seqs)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = args.settings.split(",")
    if "wild" in settings and not Path(args.qa_weights).is_file():
        print(f"no QA weights at {args.qa_weights}: wild skipped")
        settings = [s for s in settings if s != "wild"]
    methods = args.methods.split(",")
    common = dict(rounds=args.train_rounds, window=args.window, min_nb_nodes=args.min_nb_nodes, progress=True)
    t_start = time.time()

    reward_csv = work / "reward.csv"
    collect_episodes(spec, "train", train_samples, build_backend(args.vos, dev), reward_csv,
                     epochs=args.reward_epochs, seed=2020, **common)
    stats = RewardStats.from_frame(read_records(reward_csv))

    results: dict[tuple[str, str], list[dict]] = {}
    for seed in seeds:
        sdir = work / f"seed{seed}"
        if "ours" in methods:
            collect_episodes(spec, "train", train_samples, build_backend(args.vos, dev), sdir / "pretrain.csv",
                             epochs=args.pretrain_epochs, seed=2021 + 100 * seed, stats=stats, **common)
            train_dqn(spec, "train", train_samples, build_backend(args.vos, dev), stats=stats,
                      prefill=load_prefill(sdir / "pretrain.csv"), epochs=args.train_epochs,
                      seed=2019 + 100 * seed, device=dev, weights_path=sdir / "agent.pt",
                      checkpoint_path=sdir / "agent_checkpoint.pt", log_path=sdir / "train_agent_log.csv",
                      lr=args.lr, prefill_updates=args.prefill_updates, **common)
        for setting in settings:
            for method in methods:
                if method == "greedy" and setting != "oracle":
                    continue
                if method in DETERMINISTIC and seed != seeds[0]:
                    continue
                selector = make_selector(method, setting, sdir / "agent.pt", dev, args.greedy_candidates)
                qfn = make_quality_fn(setting, method, args.qa_weights, dev)
                out = sdir / "results" / setting / method
                s = evaluate(spec, "val", build_backend(args.vos, dev), selector, out, setting=setting,
                             rounds=args.rounds, seed=seed, min_nb_nodes=args.min_nb_nodes, quality_fn=qfn,
                             sequences=val_seqs, identity={"method": method, "setting": setting, "seed": seed})
                ranks = [r["chosen_rank_relative"] for r in s["rounds"] if "chosen_rank_relative" in r]
                repeats = np.mean([len(x["frames"]) - len(set(x["frames"])) for x in s["samples"]])
                results.setdefault((setting, method), []).append(
                    {"auc": s["auc"], "final": s["curve"]["J_AND_F"][-1], "rank": float(np.mean(ranks)),
                     "repeats": float(repeats)})

    print(f"\n{args.vos} on {spec.name}: agent trained on {len(train_seqs)} train sequences "
          f"({len(train_samples)} samples; reward epochs {args.reward_epochs}, pretrain {args.pretrain_epochs}, "
          f"train {args.train_epochs}, lr {args.lr:g}, prefill updates {args.prefill_updates}), evaluated on {len(val_seqs)} val sequences, {args.rounds} rounds, "
          f"seeds {seeds}; {time.time() - t_start:.0f} s")
    print(f"{'setting':7s} {'method':9s} {'n':>2s} {'round-AUC x100':>17s} {'J&F@last x100':>16s} "
          f"{'rank of chosen':>15s} {'repeats/sample':>15s}")
    for (setting, method), rs in results.items():
        a = np.array([r["auc"] for r in rs]) * 100
        f = np.array([r["final"] for r in rs]) * 100
        print(f"{setting:7s} {method:9s} {len(rs):2d} {a.mean():9.2f} +- {_sd(a):4.2f} {f.mean():8.2f} +- {_sd(f):4.2f} "
              f"{np.mean([r['rank'] for r in rs]):15.3f} {np.mean([r['repeats'] for r in rs]):15.2f}")
    print("rank of chosen: mean ground-truth rank of the recommended frame / (T - 1), 0 = the worst frame")


if __name__ == "__main__":
    main()
