"""Quality-assessment benchmark: how well the QA network ranks frames, and how fast it runs.

    python benchmarks/bench_quality.py --data-dir data              # full: 24 train / 12 val synthetic sequences
    python benchmarks/bench_quality.py --data-dir /tmp/qa --val-sequences 4 --rounds 4 --max-train 2000 --epochs 3

1. QA data: oracle-worst with the classic backend on synthetic train (``generate_data.py``'s protocol;
   resumes; ``--no-generate`` uses what is already indexed), then training (``quality_assessment.py``'s
   defaults: ResNet-18, 128-px crops) unless ``--weights`` exists.
2. Wild-worst on synthetic val (first scribble): pooled Pearson correlation of the predicted and the
   ground-truth per-frame J&F (target >= 0.6), the mean per-round correlation, and how often the frame
   wild-worst asks for is among the worst 20% of the video by ground truth.
3. QA inference time for a 40-frame, 2-object 480x854 video (target < 3 s).
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.qa_data import Augment, make_datasets, read_index, train_quality  # noqa: E402
from agent.quality import QualityAssessor, QualityNet, load_quality_net  # noqa: E402
from agent.selection import WorstSelector  # noqa: E402
from datasets.layout import resolve  # noqa: E402
from interaction.loop import run_episodes  # noqa: E402
from interaction.qa_runs import generate_qa_data  # noqa: E402
from VOS.registry import build_backend  # noqa: E402


def timing(net: QualityNet, T: int = 40, K: int = 2, H: int = 480, W: int = 854, repeats: int = 3
           ) -> tuple[float, float]:
    """Wall and CPU seconds (best of ``repeats``) to score a T-frame, K-object HxW video. CPU seconds divided by
    the thread count estimate the wall time on an otherwise idle machine."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    probs = np.zeros((T, K + 1, H, W), np.float32)
    for k in range(1, K + 1):
        probs[:, k, 100 * k:100 * k + 60, 200:200 + 300 * k] = 0.9
    probs[:, 0] = 1 - probs[:, 1:].sum(1)
    qa = QualityAssessor(net, "cpu", batch_size=32)
    qa(frames[:2], probs[:2])
    best, cpu = math.inf, math.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        qa(frames, probs)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return best, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data", help="holds synthetic/ (python -m datasets.synthetic --root ...)")
    p.add_argument("--qa-dir", default=None, help="QA data folder (default {data-dir}/quality_assessment)")
    p.add_argument("--weights", default=None, help="QA weights (default {data-dir}/bench_quality/assess_net.pt)")
    p.add_argument("--no-generate", action="store_true", help="train on the QA data already indexed")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-train", type=int, default=0, help="train on at most this many maps (0: all)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--val-sequences", type=int, default=0, help="first N val sequences (0: all)")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 is faster "
                   "when other processes load the cores")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    data = Path(a.data_dir)
    qa_dir = Path(a.qa_dir or data / "quality_assessment")
    weights = Path(a.weights or data / "bench_quality" / "assess_net.pt")
    spec = resolve("synthetic", data)

    if not a.no_generate:
        generate_qa_data(spec, "train", build_backend("classic"), qa_dir, rounds=5)
    ckpt = torch.load(weights, map_location="cpu", weights_only=True) if weights.exists() else None
    if ckpt is None or ckpt.get("epoch", -1) + 1 < a.epochs:
        train_set, val_set = make_datasets(qa_dir, crop_size=128, min_size=128, val_fraction=0.15,
                                           augment=Augment())
        if a.max_train and len(train_set) > a.max_train:
            keep = np.random.default_rng(0).choice(len(train_set), a.max_train, replace=False)
            train_set.rows = train_set.rows.iloc[np.sort(keep)].reset_index(drop=True)
            train_set.targets = train_set.rows["target"].to_numpy(np.float32)
            val_set.rows = val_set.rows.iloc[: a.max_train // 4].reset_index(drop=True)
            val_set.targets = val_set.rows["target"].to_numpy(np.float32)
        print(f"QA training: {len(train_set)} maps ({read_index(qa_dir)['sequence'].nunique()} sequences indexed), "
              f"{len(val_set)} held-out maps")
        torch.manual_seed(0)
        net = QualityNet("resnet18", crop_size=128, min_size=128)
        hist = train_quality(net, train_set, val_set, epochs=a.epochs, ckpt_path=weights,
                             history_path=weights.with_name("assess_net_history.json"), lr=a.lr)
        for h in hist:
            print(f"  epoch {h['epoch']}: train MSE {h['train_loss']:.4f}  held-out maps: Pearson "
                  f"{h.get('val_pearson', float('nan')):.3f} Spearman {h.get('val_spearman', float('nan')):.3f} "
                  f"MAE {h.get('val_mae', float('nan')):.3f}")
    net = load_quality_net(weights, "cpu")

    if not a.skip_eval:
        seqs = spec.subset("val")
        if a.val_sequences:
            seqs = seqs[: a.val_sequences]
        qa = QualityAssessor(net, "cpu", batch_size=32)
        recs = run_episodes(spec, [(s, 1) for s in seqs], "val", build_backend("classic"), WorstSelector(),
                            a.rounds, setting="wild", quality_fn=qa, desc="wild-worst val")
        pred = np.concatenate([r.quality for s in recs for r in s.rounds])
        true = np.concatenate([r.frame_jf for s in recs for r in s.rounds])
        per_round = [r.quality_pearson for s in recs for r in s.rounds if r.quality_pearson is not None]
        picks = [(r.next_rank, len(r.frame_jf)) for s in recs for r in s.rounds if r.next_frame is not None]
        in_worst = np.mean([rank < math.ceil(0.2 * T) for rank, T in picks])
        print(f"synthetic val, {len(seqs)} sequences x {a.rounds} rounds, classic backend, wild-worst:")
        print(f"  Pearson predicted vs GT per-frame J&F (pooled, {len(pred)} frames): "
              f"{np.corrcoef(pred, true)[0, 1]:.3f}   (target >= 0.6)")
        print(f"  mean per-round Pearson within a video: {np.mean(per_round):.3f}; MAE {np.abs(pred - true).mean():.3f}")
        print(f"  wild-worst picks among the worst 20% by GT: {in_worst:.1%} of {len(picks)} picks "
              f"(random: ~20%, oracle-worst: 100% unless already annotated)")
        print(f"  curve (mean J&F per round): {np.round(np.mean([s.curve for s in recs], axis=0), 3).tolist()}")

    wall, cpu = timing(net)
    n = torch.get_num_threads()
    print(f"QA inference, 40 frames x 2 objects, 480x854, resnet18/128px, {n} threads: {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU (~{cpu / n:.2f} s on {n} idle cores)   (target < 3 s)")


if __name__ == "__main__":
    main()
