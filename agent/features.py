"""Per-frame features of a round's result, without ground truth (for the feature QA model and the v2 agent).

Object features, per frame t and object k (:func:`object_features`, (T, K, F_OBJ) float32):

====  ==========================================================================================
0     distance of t to the nearest annotated frame / T (1 when nothing is annotated)
1     log(1 + distance in frames) / log(1 + T)
2     1 if t has been annotated, else 0
3     mean probability p_k over the pixels labelled k (0 when the mask is empty)
4     uncertain share: pixels with 0.2 < p_k < 0.8, divided by (area_k + that count + 1)
5     mean binary entropy of p_k (bits) over pixels where p_k > 0.05, 0 if none
6     log area ratio: log((area_k(t) + 1) / (area_k(a) + 1)), a = the nearest annotated frame, clipped to +-3
7     area_k(t) / (H W)
8     IoU of the mask of k at t with the one at t - 1 (t = 0: with t + 1); 1 when both are empty
9     IoU of the mask of k at t with the one at t + 1 (t = T - 1: with t - 1)
10    1 if the mask of k is empty at t
11    rounds done / 8
====  ==========================================================================================

Frame features for the v2 agent (:func:`agent_state_v2`, (T, F_V2) float32), with q the quality the
recommender sees (GT J&F in oracle, the QA prediction in wild) and q_prev the same after the previous
round (q itself after round 1):

====  ==========================================================================================
0     q_t
1     q_t - q_prev_t
2     q_t - mean(q)
3     rank of q_t / (T - 1) (0 = the lowest; ties share the lowest rank)
4     min(q) over t-2 .. t+2
5     times t has been annotated
6     1 if t has been annotated
7     distance of t to the nearest annotated frame / T
8     log(1 + distance) / log(1 + T)
9     t / (T - 1)
10    rounds done / 8
11..  the object features 3..9 averaged over objects (7 values)
====  ==========================================================================================
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

F_OBJ = 12
F_V2 = 18
#: the state columns the v2 ranker uses by default: all but the distance and position columns 7..9 (with them
#: the ranker did worse in both settings on the tuning set, realistic val seed 3 and synthetic val seed 7:
#: they let it learn where in 12 train videos the good frames were; README, "The look-ahead reference")
V2_DEFAULT_COLUMNS = tuple(c for c in range(F_V2) if c not in (7, 8, 9))


def annotation_distance(num_frames: int, annotated: Sequence[int]) -> np.ndarray:
    """(T,) int: frames from t to the nearest annotated frame; T when nothing is annotated."""
    T = int(num_frames)
    ann = sorted(set(int(a) for a in annotated if 0 <= int(a) < T))
    if not ann:
        return np.full(T, T, dtype=np.int64)
    t = np.arange(T)[:, None]
    return np.abs(t - np.asarray(ann)[None, :]).min(axis=1).astype(np.int64)


def _nearest_annotated(num_frames: int, annotated: Sequence[int]) -> np.ndarray:
    T = int(num_frames)
    ann = np.asarray(sorted(set(int(a) for a in annotated if 0 <= int(a) < T)))
    if len(ann) == 0:
        return np.full(T, -1, dtype=np.int64)
    t = np.arange(T)[:, None]
    return ann[np.abs(t - ann[None, :]).argmin(axis=1)]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame IoU of boolean (T, H, W) stacks; 1 where both are empty."""
    inter = np.logical_and(a, b).sum(axis=(1, 2))
    union = np.logical_or(a, b).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def object_features(probs: np.ndarray, annotated: Sequence[int], rounds_done: int,
                    masks: np.ndarray | None = None, frames: np.ndarray | None = None) -> np.ndarray:
    """(T, K, F_OBJ) float32 features (table in the module doc) of one round's result; with ``frames``
    (T, H, W, 3) uint8 RGB, (T, K, F_OBJ_IMG): the :func:`image_features` appended.

    probs: (T, K+1, H, W) float in [0, 1] (channel 0 background); masks: (T, H, W) object ids
    (default: argmax of probs); annotated: frames scribbled so far (any order, repeats allowed).
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 4 or probs.shape[1] < 2:
        raise ValueError(f"probs must be (T, K+1, H, W) with K >= 1, got {probs.shape}")
    T, K1, H, W = probs.shape
    K = K1 - 1
    if masks is None:
        masks = probs.argmax(axis=1)
    masks = np.asarray(masks)
    dist = annotation_distance(T, annotated)
    near = _nearest_annotated(T, annotated)
    out = np.zeros((T, K, F_OBJ), dtype=np.float32)
    out[:, :, 0] = (np.minimum(dist, T) / T)[:, None]
    out[:, :, 1] = (np.log1p(np.minimum(dist, T)) / np.log1p(T))[:, None]
    counts = np.bincount([int(a) for a in annotated if 0 <= int(a) < T], minlength=T)[:T]
    out[:, :, 2] = (counts > 0)[:, None]
    out[:, :, 11] = float(rounds_done) / 8.0
    for k in range(1, K + 1):
        p = probs[:, k]
        m = masks == k
        area = m.reshape(T, -1).sum(axis=1).astype(np.float64)
        out[:, k - 1, 3] = np.where(area > 0, (p * m).reshape(T, -1).sum(axis=1) / np.maximum(area, 1), 0.0)
        unc = ((p > 0.2) & (p < 0.8)).reshape(T, -1).sum(axis=1)
        out[:, k - 1, 4] = unc / (area + unc + 1.0)
        pc = np.clip(p, 1e-6, 1 - 1e-6)
        ent = -(pc * np.log2(pc) + (1 - pc) * np.log2(1 - pc))
        sup = p > 0.05
        ns = sup.reshape(T, -1).sum(axis=1)
        out[:, k - 1, 5] = np.where(ns > 0, (ent * sup).reshape(T, -1).sum(axis=1) / np.maximum(ns, 1), 0.0)
        ref = np.where(near >= 0, area[np.maximum(near, 0)], area)
        out[:, k - 1, 6] = np.clip(np.log((area + 1.0) / (ref + 1.0)), -3, 3)
        out[:, k - 1, 7] = area / (H * W)
        if T > 1:
            prev_iou = _iou(m[1:], m[:-1])           # IoU(t, t-1) for t = 1..T-1
            out[1:, k - 1, 8] = prev_iou
            out[0, k - 1, 8] = prev_iou[0]
            out[:-1, k - 1, 9] = prev_iou
            out[-1, k - 1, 9] = prev_iou[-1]
        else:
            out[:, k - 1, 8:10] = 1.0
        out[:, k - 1, 10] = area == 0
    if frames is not None:
        out = np.concatenate([out, image_features(frames, masks, annotated, K)], axis=-1)
    return out


def agent_state_v2(quality: np.ndarray, prev_quality: np.ndarray | None, counts: np.ndarray,
                   obj_feats: np.ndarray, rounds_done: int) -> np.ndarray:
    """(T, F_V2) float32 state of the v2 agent (table in the module doc).

    quality, prev_quality: (T,) in [0, 1] (prev None: no change); counts: (T,) times annotated;
    obj_feats: (T, K, F_OBJ) from :func:`object_features`.
    """
    q = np.asarray(quality, dtype=np.float64)
    T = len(q)
    qp = q if prev_quality is None else np.asarray(prev_quality, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    s = np.zeros((T, F_V2), dtype=np.float32)
    s[:, 0] = q
    s[:, 1] = q - qp
    s[:, 2] = q - q.mean()
    s[:, 3] = np.array([np.sum(q < q[t]) for t in range(T)]) / max(T - 1, 1)
    s[:, 4] = [q[max(0, t - 2): t + 3].min() for t in range(T)]
    s[:, 5] = counts
    s[:, 6] = counts > 0
    ann = [t for t in range(T) for _ in range(int(counts[t]))]
    dist = annotation_distance(T, ann)
    s[:, 7] = np.minimum(dist, T) / T
    s[:, 8] = np.log1p(np.minimum(dist, T)) / np.log1p(T)
    s[:, 9] = np.arange(T) / max(T - 1, 1)
    s[:, 10] = float(rounds_done) / 8.0
    s[:, 11:18] = np.asarray(obj_feats, dtype=np.float32)[:, :, 3:10].mean(axis=1)
    return s


# -- image evidence (the frames themselves, not only the backend's probabilities) -----------------
#: image features per frame and object (:func:`image_features`), appended to the object features when the
#: frames are given (``object_features(..., frames=...)``): F_OBJ + F_IMG columns
F_IMG = 8
F_OBJ_IMG = F_OBJ + F_IMG
#: the feature QA model's object features by name (``--qa-features``, ``qa_features``)
QA_FEATURES = {"probs": F_OBJ, "image": F_OBJ_IMG}
_IMG_ROWS = 160          # image features are computed on frames resized to at most this many rows
_BINS = 8                # colour histogram levels per channel


def _small(frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    T, H, W = masks.shape
    if H <= _IMG_ROWS:
        return frames, masks
    w = max(1, round(W * _IMG_ROWS / H))
    fr = np.stack([cv2.resize(f, (w, _IMG_ROWS), interpolation=cv2.INTER_AREA) for f in frames])
    mk = np.stack([cv2.resize(m.astype(np.uint8), (w, _IMG_ROWS), interpolation=cv2.INTER_NEAREST) for m in masks])
    return fr, mk.astype(masks.dtype)


def image_features(frames: np.ndarray, masks: np.ndarray, annotated: Sequence[int], num_objects: int) -> np.ndarray:
    """(T, K, F_IMG) float32 image evidence for the mask of each object k at each frame t, with a = the
    nearest annotated frame (whose mask is the reference; t itself when nothing is annotated):

    ====  ======================================================================================
    0     colour fit inside: mean over the mask's pixels of P(k | colour), from colour histograms
          (8 levels per channel) of k's mask and of the rest of the frame at r, the nearest annotated
          frame where k's mask is not empty (else the nearest frame where it is not)
    1     colour leak: the same over a ring just outside the mask (width ~ 15 % of sqrt(area), >= 2 px)
    2     colour fit inside at t minus the same at r
    3     edge alignment: mean gradient magnitude on the mask's boundary / the frame's mean
    4     log sharpness of frame t (variance of the Laplacian) relative to the video's median
    5     log image change of step t-1 -> t (mean absolute grey difference) relative to the video's median
    6     image change accumulated from a to t, in units of the video's mean step
    7     centroid jump of the mask from t-1 (t = 0: from t + 1) / sqrt(area), clipped to 3
    ====  ======================================================================================

    Features 0-3 are 0 where the mask is empty. frames (T, H, W, 3) uint8 RGB, masks (T, H, W) ids;
    computed at most 160 rows high."""
    import cv2

    frames = np.asarray(frames)
    masks = np.asarray(masks)
    if frames.ndim != 4 or frames.shape[:3] != masks.shape:
        raise ValueError(f"frames {frames.shape} and masks {masks.shape} do not match (T, H, W, 3) / (T, H, W)")
    fr, mk = _small(frames, masks)
    T, H, W = mk.shape
    K = int(num_objects)
    q = (fr.astype(np.int32) * _BINS) // 256
    code = (q[..., 0] * _BINS + q[..., 1]) * _BINS + q[..., 2]                      # (T, H, W) colour bin
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in fr]).astype(np.float32)
    grad = np.stack([np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
                     for g in grey])
    gmean = grad.reshape(T, -1).mean(axis=1) + 1e-6
    sharp = np.array([cv2.Laplacian(g, cv2.CV_32F).var() for g in grey]) + 1e-6
    step = np.zeros(T)
    if T > 1:
        step[1:] = np.abs(np.diff(grey, axis=0)).reshape(T - 1, -1).mean(axis=1)
        step[0] = step[1]
    near = _nearest_annotated(T, annotated)
    near = np.where(near >= 0, near, np.arange(T))
    cum = np.concatenate([[0.0], np.cumsum(step[1:])]) if T > 1 else np.zeros(1)
    unit = max(float(step.mean()), 1e-6)
    out = np.zeros((T, K, F_IMG), dtype=np.float32)
    out[:, :, 4] = np.log(sharp / np.median(sharp))[:, None]
    out[:, :, 5] = np.log((step + 1e-3) / (np.median(step) + 1e-3))[:, None]
    out[:, :, 6] = (np.abs(cum - cum[near]) / unit / max(T, 1))[:, None]
    kernel = np.ones((3, 3), np.uint8)
    nb = _BINS ** 3
    ys, xs = np.mgrid[0:H, 0:W]
    for k in range(1, K + 1):
        m = mk == k
        area = m.reshape(T, -1).sum(axis=1)
        # the colour reference of k: the nearest annotated frame where k's mask is not empty, else the
        # nearest frame where it is not (an object absent from the annotated frames), else t itself
        present = [int(a) for a in annotated if 0 <= int(a) < T and area[int(a)] > 0] or list(np.flatnonzero(area))
        ref = _nearest_annotated(T, present) if present else np.arange(T)
        post = {}
        for a in set(int(x) for x in ref):
            fg = np.bincount(code[a][m[a]], minlength=nb).astype(np.float64)
            bg = np.bincount(code[a][~m[a]], minlength=nb).astype(np.float64)
            pf, pb = (fg + 0.5) / (fg.sum() + 0.5 * nb), (bg + 0.5) / (bg.sum() + 0.5 * nb)
            post[a] = pf / (pf + pb)
        fit = np.zeros(T)
        for t in range(T):
            if area[t] == 0:
                continue                                    # features 0-3 stay 0
            p = post[int(ref[t])][code[t]]
            mu8 = m[t].astype(np.uint8)
            r = max(2, int(round(0.15 * np.sqrt(area[t]))))
            ring = (cv2.dilate(mu8, kernel, iterations=r) > 0) & ~m[t]
            edge = m[t] & ~(cv2.erode(mu8, kernel) > 0)
            fit[t] = p[m[t]].mean()
            out[t, k - 1, 0] = fit[t]
            out[t, k - 1, 1] = p[ring].mean() if ring.any() else 0.0
            out[t, k - 1, 3] = grad[t][edge].mean() / gmean[t] if edge.any() else 0.0
        out[:, k - 1, 2] = np.where(area > 0, fit - fit[ref], 0.0)
        cy = np.where(area > 0, (m * ys).reshape(T, -1).sum(axis=1) / np.maximum(area, 1), np.nan)
        cx = np.where(area > 0, (m * xs).reshape(T, -1).sum(axis=1) / np.maximum(area, 1), np.nan)
        if T > 1:
            d = np.hypot(np.diff(cy), np.diff(cx)) / np.sqrt(np.maximum(area[1:], 1))
            jump = np.concatenate([d[:1], d])
            out[:, k - 1, 7] = np.clip(np.nan_to_num(jump, nan=0.0), 0, 3)
    return out
