"""Training data and training of the quality-assessment network (PROTOCOL.md §6).

Generation (``generate_data.py``, run by :func:`interaction.qa_runs.generate_qa_data`): a backend runs the
oracle-``worst`` protocol (first scribble, full videos, 5 rounds published); after every round each object's
probability map is saved as
``{out}/interaction-<n>/scribble-<s>/<seq>/probs/<obj>/<frame:05d>.png`` (round(prob × 255), uint8), and one
row per (round, object, frame) goes to ``{out}/index.csv``:

    interaction, scribble, sequence, object, frame, target, both_empty, image, prob

``target`` is the single-object J&F of ``prob > 0.8`` (computed on the saved, quantised map, so that it
is exactly what training sees) against the ground truth of that object, with davisinteractive's metrics;
``both_empty`` marks frames where prediction and ground truth are both empty (skipped in training).
``image`` is relative to the dataset root recorded in ``{out}/meta.json``, ``prob`` relative to ``out``.
Rows are written per finished sample (sequence, scribble): a rerun skips the samples already indexed.

Training (``quality_assessment.py``): :class:`QADataset` (published augmentations, ROI crop),
:func:`split_by_sequence`, :func:`train_quality` (SGD, ExponentialLR per epoch, MSE, gradients zeroed
every iteration, which the published code did not do), :func:`evaluate_quality` (Pearson, Spearman, MAE).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import stats
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from agent.quality import QualityNet
from agent.roi import crop_resample, roi_box
from core import checkpoint
from core.distributed import SINGLE, DistInfo, GlobalBatchShards, barrier, sum_over_processes, sync_batchnorm, wrap_ddp
from core.io import atomic_write_json, atomic_write_text
from datasets import davis_metrics

log = logging.getLogger(__name__)

INDEX_FILE = "index.csv"
META_FILE = "meta.json"
COLUMNS = ["interaction", "scribble", "sequence", "object", "frame", "target", "both_empty", "image", "prob"]
TARGET_THRESHOLD = 0.8


# -- targets -----------------------------------------------------------------------------
def quantise(prob: np.ndarray) -> np.ndarray:
    """prob in [0, 1] (any shape) -> uint8 round(prob × 255), as saved in the PNGs."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float32) * 255), 0, 255).astype(np.uint8)


def single_object_jf(gt: np.ndarray, prob_u8: np.ndarray, threshold: float = TARGET_THRESHOLD
                     ) -> tuple[np.ndarray, np.ndarray]:
    """J&F per frame of one object.

    gt: (T, H, W) bool/0-1, the object's ground truth; prob_u8: (T, H, W) uint8 quantised probability.
    Returns (T,) float64 J&F of ``prob > threshold`` (davisinteractive's definitions, computed by
    ``datasets.davis_metrics``; 1 when both empty) and (T,) bool, both empty.
    """
    gt = (np.asarray(gt) > 0).astype(np.uint8)
    pred = (np.asarray(prob_u8).astype(np.float64) / 255.0 > threshold).astype(np.uint8)
    j, f = davis_metrics.jaccard_and_f(gt, pred, nb_objects=1)      # the benchmark's J and F (exact, faster)
    j, f = j[:, 0], f[:, 0]
    both_empty = ~gt.reshape(len(gt), -1).any(1) & ~pred.reshape(len(pred), -1).any(1)
    return 0.5 * (j + f), both_empty


def prob_relpath(interaction: int, scribble_idx: int, sequence: str, obj: int, frame: int) -> str:
    """The published layout, relative to the output folder."""
    return f"interaction-{interaction}/scribble-{scribble_idx}/{sequence}/probs/{obj}/{frame:05d}.png"


# -- generation ----------------------------------------------------------------------------
def read_index(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The index of ``out_dir`` (empty frame with the columns when there is none)."""
    path = Path(out_dir) / INDEX_FILE
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    return pd.read_csv(path, dtype={"sequence": str, "image": str, "prob": str})


# -- dataset ---------------------------------------------------------------------------------
def split_by_sequence(index: pd.DataFrame, val_fraction: float = 0.15, seed: int = 0
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole sequences: ceil(val_fraction × #sequences) of them (at least one when there are two
    or more and val_fraction > 0), drawn with ``seed``."""
    seqs = sorted(index["sequence"].astype(str).unique())
    n_val = math.ceil(val_fraction * len(seqs)) if val_fraction > 0 and len(seqs) > 1 else 0
    n_val = min(n_val, len(seqs) - 1) if len(seqs) > 1 else 0
    val = set(np.random.default_rng(seed).permutation(seqs)[:n_val].tolist())
    is_val = index["sequence"].astype(str).isin(val)
    return index[~is_val].reset_index(drop=True), index[is_val].reset_index(drop=True)


@dataclass
class Augment:
    """The published augmentation, the same geometry for frame and map.

    resize: (W, H) the frame is resized to first (published 854×480; None keeps it); crop: the largest
    fraction cut off (a random crop of (1-c) of each side length, c in [0, crop], resized back); scale,
    shear (deg), rotate (deg): a random affine about the centre; brightness: offset in [-b, b] (image in
    [0, 1]); contrast: factor in [1-c, 1+c]; flip: horizontal flip with probability 0.5.
    """

    resize: tuple[int, int] | None = (854, 480)
    crop: float = 0.10
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 15.0
    rotate: float = 25.0
    brightness: float = 5.0 / 255.0
    contrast: float = 0.03
    flip: bool = True

    def matrix(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
        """3×3 map from source pixel (x, y, 1) to output pixel, and the output (W, H). size: source (W, H)."""
        W, H = size
        Wo, Ho = self.resize or (W, H)
        m = np.array([[Wo / W, 0, 0.5 * Wo / W - 0.5], [0, Ho / H, 0.5 * Ho / H - 0.5], [0, 0, 1]])
        c = rng.uniform(0, self.crop)
        cw, ch = (1 - c) * Wo, (1 - c) * Ho
        ox, oy = rng.uniform(0, Wo - cw), rng.uniform(0, Ho - ch)
        m = np.array([[Wo / cw, 0, -ox * Wo / cw], [0, Ho / ch, -oy * Ho / ch], [0, 0, 1]]) @ m
        s = rng.uniform(*self.scale)
        th = math.radians(rng.uniform(-self.rotate, self.rotate))
        sh = math.radians(rng.uniform(-self.shear, self.shear))
        cx, cy = (Wo - 1) / 2, (Ho - 1) / 2
        rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
        shear = np.array([[1, math.tan(sh), 0], [0, 1, 0], [0, 0, 1]])
        centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
        uncentre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        m = centre @ rot @ shear @ np.diag([s, s, 1]) @ uncentre @ m
        if self.flip and rng.random() < 0.5:
            m = np.array([[-1, 0, Wo - 1], [0, 1, 0], [0, 0, 1]]) @ m
        return m, (Wo, Ho)

    def __call__(self, rng: np.random.Generator, image: np.ndarray, prob: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """image: (H, W, 3) uint8; prob: (H, W) float32 in [0, 1]. Returns (Ho, Wo, 3) float32 in [0, 1] and
        (Ho, Wo) float32 in [0, 1]."""
        H, W = prob.shape
        m, (Wo, Ho) = self.matrix(rng, (W, H))
        img = cv2.warpAffine(image, m[:2], (Wo, Ho), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        pm = cv2.warpAffine(prob, m[:2], (Wo, Ho), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = rng.uniform(1 - self.contrast, 1 + self.contrast)
        b = rng.uniform(-self.brightness, self.brightness)
        img = np.clip(img.astype(np.float32) / 255.0 * a + b, 0.0, 1.0)
        return img, np.clip(pm, 0.0, 1.0)


class QADataset(Dataset):
    """(image crop (3, S, S) float32 in [0, 1], map crop (1, S, S) float32 in [0, 1], target float32) per row.

    rows: index rows (``image`` relative to ``image_root``, ``prob`` relative to ``prob_root``); rows with
    ``both_empty`` are dropped. augment: an :class:`Augment` or None (evaluation: no augmentation).
    The random draw of row i depends on (seed, epoch, i) only: call :meth:`set_epoch` each epoch.
    """

    def __init__(self, rows: pd.DataFrame, image_root: str | os.PathLike, prob_root: str | os.PathLike,
                 crop_size: int = 128, min_size: int = 128, augment: Augment | None = None, seed: int = 0) -> None:
        rows = rows[rows["both_empty"].astype(int) == 0] if "both_empty" in rows else rows
        self.rows = rows.reset_index(drop=True)
        self.image_root, self.prob_root = Path(image_root), Path(prob_root)
        self.crop_size, self.min_size = int(crop_size), int(min_size)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.targets = self.rows["target"].to_numpy(np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB frame and (H, W) float32 map of row i."""
        r = self.rows.iloc[i]
        img = cv2.imread(str(self.image_root / r["image"]), cv2.IMREAD_COLOR)
        pm = cv2.imread(str(self.prob_root / r["prob"]), cv2.IMREAD_GRAYSCALE)
        if img is None or pm is None:
            raise FileNotFoundError(f"cannot read {self.image_root / r['image']} or {self.prob_root / r['prob']}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), pm.astype(np.float32) / 255.0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img, pm = self.load(i)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            img, pm = self.augment(rng, img, pm)
        else:
            img = img.astype(np.float32) / 255.0
        box = torch.from_numpy(roi_box(pm, min_size=self.min_size))[None]
        both = torch.from_numpy(np.concatenate([img, pm[..., None]], axis=2)).permute(2, 0, 1)[None]
        crop = crop_resample(both, box, self.crop_size)[0]
        return crop[:3], crop[3:], torch.tensor(self.targets[i])


def make_datasets(out_dir: str | os.PathLike, *, crop_size: int, min_size: int = 128, val_fraction: float = 0.15,
                  seed: int = 0, augment: Augment | None = None, image_root: str | os.PathLike | None = None
                  ) -> tuple[QADataset, QADataset]:
    """Train (augmented) and validation (not augmented) datasets from a generated folder, split by sequence."""
    out = Path(out_dir)
    index = read_index(out)
    if index.empty:
        raise FileNotFoundError(f"no QA data in {out}: run `python generate_data.py` first")
    if image_root is None:
        image_root = json.loads((out / META_FILE).read_text())["dataset_root"]
    train, val = split_by_sequence(index, val_fraction, seed)
    aug = augment if augment is not None else Augment()
    return (QADataset(train, image_root, out, crop_size, min_size, aug, seed),
            QADataset(val, image_root, out, crop_size, min_size, None, seed))


# -- training ----------------------------------------------------------------------------------
def correlations(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman (NaN when either side is constant) and MAE of two (N,) vectors."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    out = {"mae": float(np.abs(pred - target).mean()) if len(pred) else float("nan"), "n": int(len(pred))}
    if len(pred) > 1 and np.std(pred) > 0 and np.std(target) > 0:
        out["pearson"] = float(stats.pearsonr(pred, target)[0])
        out["spearman"] = float(stats.spearmanr(pred, target)[0])
    else:
        out["pearson"] = out["spearman"] = float("nan")
    return out


@torch.no_grad()
def predict(net: QualityNet, dataset: Dataset, device: torch.device | str = "cpu", batch_size: int = 32,
            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(N,) predictions clipped to [0, 1] (as used at inference) and (N,) targets, in eval mode."""
    was = net.training
    net.eval()
    preds, targets = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    for img, pm, y in tqdm(loader, desc="QA eval", leave=False, disable=not progress):
        preds.append(net(img.to(device), pm.to(device)).clamp(0, 1).cpu().numpy())
        targets.append(y.numpy())
    net.train(was)
    if not preds:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(preds), np.concatenate(targets)


def evaluate_quality(net: QualityNet, dataset: Dataset, device: torch.device | str = "cpu",
                     batch_size: int = 32, progress: bool = False) -> dict[str, float]:
    """Pearson, Spearman, MAE (and MSE) of the clipped predictions on ``dataset``."""
    pred, target = predict(net, dataset, device, batch_size, progress)
    out = correlations(pred, target)
    out["mse"] = float(np.mean((pred - target) ** 2)) if len(pred) else float("nan")
    return out


def train_epoch(net: QualityNet, loader: DataLoader, optimizer: torch.optim.Optimizer,
                device: torch.device | str = "cpu", progress: bool = False, desc: str = "QA train",
                steps: list[float] | None = None, dist_info: DistInfo = SINGLE) -> float:
    """One pass of MSE regression; returns the mean training loss (over every process's samples
    when ``dist_info`` is a torchrun group). ``steps``: gets each step's loss on the global batch."""
    net.train()
    loss_fn = nn.MSELoss()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    for img, pm, y in bar:
        img, pm, y = img.to(device), pm.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)   # the published code never did: its gradients accumulated
        loss = loss_fn(net(img, pm), y)
        loss.backward()
        optimizer.step()
        step_sum, step_n = sum_over_processes([loss.item() * len(y), float(len(y))], dist_info)
        total += step_sum
        n += int(step_n)
        if steps is not None:
            steps.append(step_sum / step_n)
        bar.set_postfix(loss=f"{total / n:.4f}")
    return total / max(n, 1)


def init_head(net: QualityNet, mean_target: float) -> None:
    """Start every prediction at ``mean_target`` (fc1 weight 0, bias = mean): a from-scratch network otherwise
    begins far off and its first large gradients destabilise the trunk. Used for fresh runs only."""
    with torch.no_grad():
        net.fc1.weight.zero_()
        net.fc1.bias.fill_(mean_target)


CHECKPOINT_LAYOUT = ("a QA training checkpoint of quality_assessment.py ({'model', 'meta', 'optimizer', "
                     "'scheduler', 'epoch', 'history'}, kept in train_dir/quality/checkpoint.pt)")


def _save_checkpoint(path: Path, net: QualityNet, optimizer, scheduler, epoch: int, history: list[dict]) -> None:
    checkpoint.save({"model": net.state_dict(), "meta": net.meta(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history}, path)


def _export(net: QualityNet, path: Path, owner: dict | None) -> None:
    """The exported weights ({'model', 'meta'}, loads with agent.quality.load_quality_net), atomically; a file
    there that this run did not export (the published assess_net.pt) is refused, never overwritten."""
    obj = {"model": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "meta": net.meta()}
    if owner is None:
        checkpoint.save(obj, path)
    else:
        checkpoint.export(obj, path, owner=owner,
                          fix="export to another folder (weights_dir=...) or move the file away")


def train_quality(net: QualityNet, train_set: QADataset, val_set: QADataset | None, *, epochs: int,
                  ckpt_path: str | os.PathLike, history_path: str | os.PathLike | None = None,
                  lr: float = 5e-6, momentum: float = 0.9, weight_decay: float = 5e-4, gamma: float = 0.95,
                  batch_size: int = 32, device: torch.device | str = "cpu", seed: int = 0,
                  num_workers: int = 0, export_path: str | os.PathLike | None = None, owner: dict | None = None,
                  progress: bool = True, dist_info: DistInfo = SINGLE) -> list[dict[str, Any]]:
    """Train ``net`` for ``epochs`` epochs (SGD + ExponentialLR(gamma) per epoch, MSE), resuming from the
    training checkpoint ``ckpt_path`` when it exists. After every epoch: validation Pearson / Spearman /
    MAE logged and appended to the history (JSON at ``history_path`` and a CSV beside it), ``ckpt_path``
    rewritten atomically, then the weights exported to ``export_path`` (atomically; with ``owner``, the
    run's identity, a file there this run did not write is refused, see :func:`core.checkpoint.export`).
    Exported weights are never resumed from. A finished run exports again, so a kill between the last
    checkpoint and its export never leaves the export an epoch old. Returns the history.

    Under torchrun (``dist_info`` of a group, :func:`core.distributed.init_from_env`): every process
    trains on its share of each global batch of ``batch_size`` (:class:`core.distributed.GlobalBatchShards`)
    through DistributedDataParallel, batch norm over the global batch; only the main process (rank 0)
    validates, logs, writes the checkpoint, the history and the export. Each step's loss goes to
    ``<history>_steps.csv`` (epoch, step, loss on the global batch)."""
    ckpt_path = Path(ckpt_path)
    net.to(device)
    if dist_info.active:
        net = sync_batchnorm(net, torch.device(device))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    history: list[dict[str, Any]] = []
    start = 0
    if export_path is not None and Path(export_path).resolve() == ckpt_path.resolve():
        raise ValueError(f"the training checkpoint and the exported weights must be different files ({ckpt_path})")
    if ckpt_path.exists():
        ckpt = checkpoint.load(ckpt_path, expected=CHECKPOINT_LAYOUT, map_location=device,
                               fix="delete it to start the training over")
        if not (isinstance(ckpt, dict) and {"model", "optimizer", "scheduler", "epoch"} <= set(ckpt)):
            raise checkpoint.CheckpointError(f"{ckpt_path} is not a QA training checkpoint (exported or published "
                                             f"weights?): expected {CHECKPOINT_LAYOUT}; move it away")
        if ckpt.get("meta", {}).get("backbone") != net.backbone:
            raise ValueError(f"{ckpt_path} holds a {ckpt.get('meta', {}).get('backbone')} run, not {net.backbone}:"
                             f" move it away to start over")
        checkpoint.load_into(net, ckpt["model"], ckpt_path, expected=CHECKPOINT_LAYOUT)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start, history = int(ckpt["epoch"]) + 1, list(ckpt.get("history", []))
        log.info("QA training resumed from %s after epoch %d", ckpt_path, start)
    if start == 0 and len(train_set):
        init_head(net, float(np.mean(train_set.targets)))
    model = wrap_ddp(net, dist_info, torch.device(device))
    main = dist_info.main
    for epoch in range(start, epochs):
        train_set.set_epoch(epoch)
        drop_last = len(train_set) > batch_size
        # the global batches, shared out among the processes of a torchrun group (alone: all of them)
        shards = GlobalBatchShards(len(train_set), batch_size, dist_info, seed * 1000 + epoch, drop_last)
        loader = DataLoader(train_set, batch_sampler=shards, num_workers=num_workers)
        steps: list[float] = []
        loss = train_epoch(model, loader, optimizer, device, progress and main, desc=f"QA epoch {epoch + 1}/{epochs}",
                           steps=steps, dist_info=dist_info)
        lr_now = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr_now, "train_loss": loss}
        if main and val_set is not None and len(val_set):
            row.update({f"val_{k}": v for k, v in evaluate_quality(net, val_set, device, batch_size).items()})
        history.append(row)
        if not main:
            continue
        log.info("QA epoch %d/%d: %s", epoch + 1, epochs,
                 ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        _save_checkpoint(ckpt_path, net, optimizer, scheduler, epoch, history)
        _write_history(history_path, history)
        _append_steps(history_path, epoch + 1, steps)
        if export_path is not None:
            _export(net, Path(export_path), owner)
    if main and start >= epochs and history:   # finished before: the files match the last checkpoint, even after a kill
        _write_history(history_path, history)
        if export_path is not None:
            _export(net, Path(export_path), owner)
    barrier(dist_info)
    return history


def _append_steps(history_path: str | os.PathLike | None, epoch: int, steps: list[float]) -> None:
    """``<history>_steps.csv``: one row per training step (epoch, step, loss), rows of ``epoch``
    replaced (a resumed epoch is written once)."""
    if history_path is None:
        return
    path = Path(history_path).with_name(Path(history_path).stem + "_steps.csv")
    old = pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame(columns=["epoch", "step", "loss"])
    new = pd.DataFrame({"epoch": epoch, "step": range(1, len(steps) + 1), "loss": steps})
    rows = pd.concat([old[old["epoch"] < epoch], new], ignore_index=True) if len(old) else new
    atomic_write_text(path, rows.to_csv(index=False))


def _write_history(history_path: str | os.PathLike | None, history: list[dict]) -> None:
    if history_path is not None:
        hp = Path(history_path)
        atomic_write_json(hp, history)
        atomic_write_text(hp.with_suffix(".csv"), pd.DataFrame(history).to_csv(index=False))


__all__ = ["Augment", "COLUMNS", "INDEX_FILE", "META_FILE", "QADataset", "correlations",
           "evaluate_quality", "init_head", "make_datasets", "predict", "prob_relpath", "quantise",
           "read_index", "single_object_jf", "split_by_sequence", "train_epoch", "train_quality"]
