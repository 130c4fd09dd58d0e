"""The region of interest the quality-assessment network looks at (PROTOCOL.md §6), in the published
arithmetic exactly (it is the published weights' input). Per axis, shown for y of an (H, W) map:

1. ``m = prob > 0.5``, thresholded again at ``m >= 0.49``; ``ymin, ymax`` are the first and last row
   holding such a pixel (integers); when there is none, ``ymin, ymax = 0, H`` (not ``H - 1``).
2. Growth: if ``ymax - ymin < min_size``, ``r = min_size - (ymax - ymin)`` and both ends move out by
   ``int(r / 2)`` (truncated).
3. Scale: ``h0 = ymax - ymin + 1``; ``ymin = max(-margin, ymin - (scale - 1) / 2 · h0)``,
   ``ymax = min(H + margin, ymax + (scale - 1) / 2 · h0)`` (``0.25 · h0`` for the published 1.5).
4. Span: centre ``cy = (ymax + ymin) / 2``, size ``h = ymax - ymin + 1``; the sampling grid spans
   ``cy ± h / 2``, i.e. the published ``theta = [h / (H - 1), (2·cy - (H - 1)) / (H - 1)]`` with
   ``F.affine_grid(..., align_corners=True)``.

Boxes are ``(x0, y0, x1, y1)`` = ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)`` float arrays: the
pixel-centre coordinates of the first and last sample of the grid. :func:`crop_resample` samples
``out_size`` points evenly from ``x0`` to ``x1`` (both included), bilinear with ``align_corners=True``
semantics (pixel ``i`` is at coordinate ``i``), zeros outside the frame.
Published values: ``min_size=128``, ``out_size=256``, ``scale=1.5``, ``margin=5``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

THRESHOLD = 0.5
#: the published code thresholds ``(prob > 0.5)`` a second time at this value
RETHRESHOLD = 0.49


def roi_box(prob: np.ndarray, min_size: float = 128, scale: float = 1.5, margin: float = 5,
            threshold: float = THRESHOLD) -> np.ndarray:
    """ROI of one probability map.

    prob: (H, W) float in [0, 1] (or a bool mask). Returns (4,) float64 ``(x0, y0, x1, y1)``.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be (H, W), got {prob.shape}")
    return roi_boxes(prob[None], min_size, scale, margin, threshold)[0]


def bounding_boxes(probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Step 1: (N, H, W) maps -> (N, 4) float64 ``(xmin, ymin, xmax, ymax)`` integer indices of the pixels
    of ``(prob > threshold) >= 0.49``; ``(0, 0, W, H)`` for a map with none."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (N, H, W), got {probs.shape}")
    N, H, W = probs.shape
    fg = (probs > threshold).astype(np.float32) >= RETHRESHOLD
    rows = fg.any(axis=2)            # (N, H)
    cols = fg.any(axis=1)            # (N, W)
    empty = ~rows.any(axis=1)
    y0 = rows.argmax(axis=1).astype(np.float64)
    y1 = (H - 1 - rows[:, ::-1].argmax(axis=1)).astype(np.float64)
    x0 = cols.argmax(axis=1).astype(np.float64)
    x1 = (W - 1 - cols[:, ::-1].argmax(axis=1)).astype(np.float64)
    y0[empty], y1[empty], x0[empty], x1[empty] = 0.0, float(H), 0.0, float(W)
    return np.stack([x0, y0, x1, y1], axis=1)


def roi_boxes(probs: np.ndarray, min_size: float = 128, scale: float = 1.5, margin: float = 5,
              threshold: float = THRESHOLD) -> np.ndarray:
    """ROIs of N probability maps. probs: (N, H, W) in [0, 1]. Returns (N, 4) float64 ``(x0, y0, x1, y1)``."""
    probs = np.asarray(probs)
    return expand_boxes(bounding_boxes(probs, threshold), probs.shape[1:], min_size, scale, margin)


def _axis(lo: np.ndarray, hi: np.ndarray, n: int, min_size: float, scale: float, margin: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-4 on one axis of length ``n``: (N,) first and last index -> (N,) first and last sample."""
    r = min_size - (hi - lo)
    grow = np.where(r > 0, np.trunc(r / 2), 0.0)              # int(r / 2), only when hi - lo < min_size
    lo, hi = lo - grow, hi + grow
    ext = (scale - 1) / 2 * (hi - lo + 1)
    lo, hi = np.maximum(-margin, lo - ext), np.minimum(n + margin, hi + ext)
    centre, size = (hi + lo) / 2, hi - lo + 1
    return centre - size / 2, centre + size / 2


def expand_boxes(boxes: np.ndarray, size: tuple[int, int], min_size: float = 128, scale: float = 1.5,
                 margin: float = 5) -> np.ndarray:
    """Steps 2-4 on (N, 4) ``(xmin, ymin, xmax, ymax)`` bounding boxes of an (H, W) map (``size``):
    returns the (N, 4) ``(x0, y0, x1, y1)`` sampling spans."""
    H, W = size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, x1 = _axis(b[:, 0], b[:, 2], W, min_size, scale, margin)
    y0, y1 = _axis(b[:, 1], b[:, 3], H, min_size, scale, margin)
    return np.stack([x0, y0, x1, y1], axis=1)


def box_grid(boxes: torch.Tensor, size: tuple[int, int], out_size: int) -> torch.Tensor:
    """Sampling grid for ``F.grid_sample(..., align_corners=True)``.

    boxes: (N, 4) ``(x0, y0, x1, y1)`` pixel-centre coordinates of an (H, W) image; returns (N, S, S, 2)
    normalised (x, y) in the convention of ``align_corners=True`` (-1 = centre of pixel 0)."""
    H, W = size
    boxes = boxes.to(torch.float32)
    t = torch.linspace(0.0, 1.0, out_size, device=boxes.device, dtype=torch.float32)
    xs = boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * t          # (N, S)
    ys = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t
    gx = 2 * xs / max(W - 1, 1) - 1
    gy = 2 * ys / max(H - 1, 1) - 1
    S = out_size
    return torch.stack([gx[:, None, :].expand(-1, S, S), gy[:, :, None].expand(-1, S, S)], dim=-1)


def crop_resample(images: torch.Tensor, boxes: torch.Tensor, out_size: int = 256,
                  index: torch.Tensor | None = None) -> torch.Tensor:
    """Resample box regions of images to ``out_size × out_size`` (bilinear, align_corners=True, zeros outside).

    images: (B, C, H, W) float. boxes: (N, 4) float ``(x0, y0, x1, y1)``. index: (N,) long, the image each
    box is taken from (default: box n from image n, N == B). Returns (N, C, S, S).
    Each image is read once however many boxes it has (the boxes of one image are stacked into one grid),
    so a frame is not copied per object.
    """
    B, C, H, W = images.shape
    N = boxes.shape[0]
    grid = box_grid(boxes.to(images.device), (H, W), out_size)          # (N, S, S, 2)
    if index is None:
        if N != B:
            raise ValueError(f"{N} boxes for {B} images: pass index")
        return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                             align_corners=True)
    index = index.to(images.device).long()
    grid = grid.to(images.dtype)
    out = images.new_zeros((N, C, out_size, out_size))
    for b in torch.unique(index).tolist():
        sel = (index == b).nonzero(as_tuple=True)[0]
        g = grid[sel].reshape(1, len(sel) * out_size, out_size, 2)     # boxes stacked vertically
        r = F.grid_sample(images[b:b + 1], g, mode="bilinear", padding_mode="zeros", align_corners=True)
        out[sel] = r.reshape(C, len(sel), out_size, out_size).transpose(0, 1)
    return out


def crop_pairs(frames: torch.Tensor, probs: torch.Tensor, boxes: torch.Tensor, frame_index: torch.Tensor,
               out_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop N (frame, map) pairs with the same boxes.

    frames: (B, 3, H, W) float; probs: (N, 1, H, W) float in [0, 1], map n belongs to frame
    ``frame_index[n]``; boxes: (N, 4). Returns images (N, 3, S, S) and maps (N, 1, S, S).
    """
    imgs = crop_resample(frames, boxes, out_size, frame_index)
    maps = crop_resample(probs, boxes, out_size)
    return imgs, maps


__all__ = ["RETHRESHOLD", "THRESHOLD", "bounding_boxes", "box_grid", "crop_pairs", "crop_resample", "expand_boxes", "roi_box", "roi_boxes"]
