"""Mask PNGs (DAVIS palette), overlays and the overlay video."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

from core.io import atomic_write_bytes


def davis_palette() -> np.ndarray:
    """(256, 3) uint8: the DAVIS (PASCAL VOC) palette, id k drawn in row k. The same table as
    datasets.synthetic.davis_palette (tested equal), built here because importing the datasets package
    loads davisinteractive (seconds), which the page's first frame request would wait for."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - j)
            c >>= 3
        pal[i] = rgb
    return pal


PALETTE = davis_palette()


def palette_png_bytes(ids: np.ndarray) -> bytes:
    """PNG bytes of ``ids`` ((H, W) uint8 object ids) as a palette image (pixel value = id)."""
    im = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8))
    im.putpalette(PALETTE.reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_palette_png(path: str | os.PathLike, ids: np.ndarray) -> Path:
    """``ids``: (H, W) uint8 object ids -> a palette PNG (pixel value = id), written atomically."""
    return atomic_write_bytes(path, palette_png_bytes(ids))


def overlay_frame(rgb: np.ndarray, ids: np.ndarray | None, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 RGB with objects (ids > 0) tinted in their DAVIS colour and outlined."""
    if ids is None:
        return rgb.copy()
    out = rgb.astype(np.float32)
    fg = ids > 0
    colour = PALETTE[ids].astype(np.float32)
    out[fg] = (1 - alpha) * out[fg] + alpha * colour[fg]
    edges = cv2.morphologyEx(ids, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges & fg] = colour[edges & fg]
    return np.clip(out, 0, 255).astype(np.uint8)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 24.0) -> Path:
    """Write RGB frames ((H, W, 3) uint8) as mp4 (mp4v) or avi (MJPG), to a temporary name first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    writer = None
    try:
        for rgb in frames:
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), fourcc, float(fps), (rgb.shape[1], rgb.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {path}; use a .mp4 or .avi name")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    os.replace(tmp, path)
    return path


def plot_quality(path: str | os.PathLike, quality: np.ndarray | None, annotated: list[int],
                 recommended: int | None, title: str = "") -> Path:
    """A PNG timeline: predicted quality per frame, annotated frames, the recommended frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 2.4), dpi=110)
    if quality is not None:
        ax.plot(np.arange(len(quality)), quality, color="tab:blue", lw=1.5, label="predicted quality (J&F)")
        ax.set_ylim(0, 1.02)
    else:
        ax.text(0.5, 0.5, "no QA network weights: no predicted quality", transform=ax.transAxes, ha="center")
    for i, f in enumerate(sorted(set(annotated))):
        ax.axvline(f, color="grey", lw=1, ls=":", label="annotated" if i == 0 else None)
    if recommended is not None:
        ax.axvline(recommended, color="tab:red", lw=2, label=f"recommended: {recommended}")
    ax.set_xlabel("frame")
    ax.set_ylabel("quality")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
