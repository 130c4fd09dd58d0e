"""Shared fixtures: a tiny DAVIS-layout dataset written by the tests themselves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets import davis_compat as dc
from datasets.layout import DatasetSpec, write_metadata

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12)


def tiny_masks(T: int, H: int, W: int, shift: int) -> np.ndarray:
    """Two elongated bars moving in opposite directions: (T, H, W) uint8 ids 0..2."""
    gt = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        x = 4 + (t * 3 + shift) % (W // 3)
        gt[t, H // 5: H // 5 + 6, x: x + W // 2] = 1
        y = 2 + (t * 2 + shift) % (H // 3)
        gt[t, y: y + H // 2, W - 12 - t: W - 6 - t] = 2
    return gt


def write_tiny_davis(root: Path, sequences: dict[str, str], T: int = 6, H: int = 48, W: int = 80,
                     scribble_frames=(0, 2, 4)) -> DatasetSpec:
    """Write a DAVIS-layout root: every sequence has 2 elongated objects, frames textured so that
    objects differ from the background, and initial scribbles made by the real robot against an
    empty prediction on ``scribble_frames``."""
    rng = np.random.default_rng(0)
    robot = dc.robot_for(4)
    meta = {}
    for i, (seq, split) in enumerate(sequences.items()):
        gt = tiny_masks(T, H, W, shift=3 * i)
        (root / "JPEGImages/480p" / seq).mkdir(parents=True, exist_ok=True)
        (root / "Annotations/480p" / seq).mkdir(parents=True, exist_ok=True)
        (root / "Scribbles" / seq).mkdir(parents=True, exist_ok=True)
        colours = np.array([[40, 60, 50], [220, 60, 40], [40, 90, 230]], np.float64)
        for t in range(T):
            img = colours[gt[t]] + rng.normal(0, 8, (H, W, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "JPEGImages/480p" / seq / f"{t:05d}.jpg",
                                                                         quality=95)
            png = Image.fromarray(gt[t], mode="P")
            png.putpalette(PALETTE)
            png.save(root / "Annotations/480p" / seq / f"{t:05d}.png")
        for k, f in enumerate(scribble_frames, start=1):
            scr = robot.interact(seq, np.zeros_like(gt, dtype=np.int64), gt.astype(np.int64), nb_objects=2, frame=f)
            (root / "Scribbles" / seq / f"{k:03d}.json").write_text(json.dumps(scr))
        meta[seq] = {"name": seq, "num_frames": T, "num_objects": 2, "num_scribbles": len(scribble_frames),
                     "image_size": [W, H], "set": split}
    (root / "ImageSets/2017").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (root / "ImageSets/2017" / f"{split}.txt").write_text(
            "".join(f"{s}\n" for s, sp in sequences.items() if sp == split))
    write_metadata(root, meta)
    return DatasetSpec(root.name, root, meta)


@pytest.fixture(scope="session")
def tiny_davis(tmp_path_factory) -> DatasetSpec:
    root = tmp_path_factory.mktemp("tiny") / "tinydavis"
    return write_tiny_davis(root, {"bars-a": "val", "bars-b": "val", "bars-c": "train"})
