"""The region of interest the quality-assessment network looks at (PROTOCOL.md §6).

For one object's probability map the ROI is the bounding box of ``prob > 0.5`` (the whole frame when
nothing is above 0.5), grown to at least ``min_size`` pixels per side, scaled ×1.5 about its centre and
clamped to ``[-5, W+5] × [-5, H+5]``. Frame and map are then resampled to ``out_size × out_size`` with
bilinear interpolation, ``align_corners=True`` semantics: the box corners are pixel *centres*, so output
pixel ``i`` samples input coordinate ``x0 + (x1 - x0) · i / (S - 1)``. Outside the frame the samples are 0.

Boxes are ``(x0, y0, x1, y1)`` float arrays in pixel-centre coordinates, both ends inclusive: the bounding
box of a mask whose pixels span columns 10..20 is ``x0=10, x1=20``; the whole frame is ``(0, 0, W-1, H-1)``.
Published values: ``min_size=128``, ``out_size=256``, ``scale=1.5``, ``margin=5``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

THRESHOLD = 0.5


def roi_box(prob: np.ndarray, min_size: float = 128, scale: float = 1.5, margin: float = 5,
            threshold: float = THRESHOLD) -> np.ndarray:
    """ROI of one probability map.

    prob: (H, W) float in [0, 1] (or a bool mask). Returns (4,) float64 ``(x0, y0, x1, y1)``.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be (H, W), got {prob.shape}")
    return roi_boxes(prob[None], min_size, scale, margin, threshold)[0]


def roi_boxes(probs: np.ndarray, min_size: float = 128, scale: float = 1.5, margin: float = 5,
              threshold: float = THRESHOLD) -> np.ndarray:
    """ROIs of N probability maps. probs: (N, H, W) in [0, 1]. Returns (N, 4) float64 ``(x0, y0, x1, y1)``."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (N, H, W), got {probs.shape}")
    N, H, W = probs.shape
    fg = probs > threshold
    rows = fg.any(axis=2)            # (N, H)
    cols = fg.any(axis=1)            # (N, W)
    empty = ~rows.any(axis=1)
    # first / last True index; argmax on reversed array for the last
    y0 = rows.argmax(axis=1).astype(np.float64)
    y1 = (H - 1 - rows[:, ::-1].argmax(axis=1)).astype(np.float64)
    x0 = cols.argmax(axis=1).astype(np.float64)
    x1 = (W - 1 - cols[:, ::-1].argmax(axis=1)).astype(np.float64)
    y0[empty], y1[empty], x0[empty], x1[empty] = 0.0, H - 1.0, 0.0, W - 1.0
    boxes = np.stack([x0, y0, x1, y1], axis=1)
    return expand_boxes(boxes, (H, W), min_size, scale, margin)


def expand_boxes(boxes: np.ndarray, size: tuple[int, int], min_size: float = 128, scale: float = 1.5,
                 margin: float = 5) -> np.ndarray:
    """Grow (N, 4) ``(x0, y0, x1, y1)`` boxes to at least ``min_size`` per side, scale them by ``scale`` about
    their centres and clamp them to ``[-margin, W+margin] × [-margin, H+margin]``. size: (H, W)."""
    H, W = size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    c = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)        # (N, 2) centre x, y
    half = np.maximum(np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1), min_size) / 2 * scale
    lo = np.maximum(c - half, -margin)
    hi = np.minimum(c + half, np.array([W + margin, H + margin], dtype=np.float64))
    return np.concatenate([lo, hi], axis=1)


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


__all__ = ["THRESHOLD", "box_grid", "crop_pairs", "crop_resample", "expand_boxes", "roi_box", "roi_boxes"]
