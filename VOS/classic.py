"""``classic``: a VOS backend with no learned weights that runs on CPU in seconds.

One round on frame ``f``:

1. *Annotated frame.* Every stroke ever drawn on ``f`` is rasterised (davisinteractive paths are
   normalised by (W, H)); the frame is segmented at a working resolution by one GrabCut per
   object (OpenCV graph cut on colour GMMs), seeded by the object's strokes (sure foreground),
   the other labels' strokes (sure background) and, from round 2 on, the current result on ``f``
   (probable labels, and left untouched far from this round's strokes); on a frame with no result yet,
   only the pixels within half the seed radius of an object's strokes start as probably that object
   (``first_radius``). The nearest other annotated frames can be appended below the frame as sure
   labels, so the colour models also learn from them (``ref_anchors``, off by default); regions of
   an object with none of its strokes that are smaller than ``min_region`` of its largest annotated
   area are dropped (``anchor_clean``: GrabCut speckle, and an absent object's remnant scores J = 0
   however small). Stroke pixels keep their label exactly. The
   result is the *anchor* of ``f``.
2. *Propagation.* Dense optical flow (OpenCV DIS, Farneback as fallback) between consecutive
   frames, both directions, is computed once per video at the working resolution and cached.
   From every anchor the labels are carried forward and backward one frame at a time, stopping at
   the next anchor in that direction (re-anchoring). The carried state is a hard label map: it is
   warped by the flow where the forward-backward check passes and replaced by a broad blur of
   itself where the check fails (occlusions), blurred by the expected flow error (the spatial
   prior), and re-binarised by the arg-max of the prior times the anchor's per-label colour
   likelihood raised to ``colour_feedback`` (0.3). The frame's estimate is the prior times the
   full colour likelihood, normalised. An earlier version carried the soft posterior with the
   full likelihood fed back: blurs diffused thin objects away and colour pulled objects into
   look-alike background a little more every frame (J&F after round 8 on the synthetic val set:
   0.72 then, 0.9 now). Estimates from the anchors on either side of a frame are averaged with
   weights ``decay**distance`` (the nearer anchor wins). Regions of an object's label smaller
   than ``min_region`` of its largest anchor area are dropped (flow remnants of an object that
   has left the view would otherwise score J = 0 on every frame where it is absent).
   *Re-detection.* An object whose mass in the chain falls under a fifth of its anchor mass
   (lost after an occlusion or an exit) is searched for near its last tracked position as a
   region dense in pixels of its anchor colours (:meth:`ClassicBackend._redetect`).
3. *Keeping what is known.* Only frames strictly between the anchors that enclose ``f`` are
   recomputed; every other frame keeps the previous round's result unchanged.

Probabilities: ``probs[t] = tau * P + (1 - tau) / (K + 1)`` where ``P`` is the merged estimate
(soft at object boundaries and at flow inconsistencies) and ``tau = decay**d`` with ``d`` the
distance to the nearest anchor, so confidence decays away from annotations while the arg-max is
unchanged. ``masks == probs.argmax(1)`` on every frame (exactly; on annotated frames the anchor's
one-hot map is given confidence ``anchor_confidence``).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np

from VOS.base import RoundOutput, VOSBackend

log = logging.getLogger(__name__)


# -- scribbles ------------------------------------------------------------------------
def rasterize_strokes(strokes: list[dict], height: int, width: int, thickness: int = 1) -> np.ndarray:
    """Draw davisinteractive strokes (paths in [0, 1], normalised by (W, H)) on an (H, W) grid.

    Returns (H, W) int16 labels: the stroke's ``object_id`` on its pixels, -1 elsewhere. Later
    strokes overwrite earlier ones where they cross.
    """
    out = np.full((height, width), -1, np.int16)
    scale = np.array([width, height], np.float64)
    hi = np.array([width - 1, height - 1])
    for s in strokes:
        path = np.asarray(s.get("path", []), np.float64).reshape(-1, 2)
        if len(path) == 0:
            continue
        pts = np.clip(np.floor(path * scale), 0, hi).astype(np.int32)
        canvas = np.zeros((height, width), np.uint8)
        cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, 1, thickness=max(1, int(thickness)))
        canvas[pts[:, 1], pts[:, 0]] = 1
        out[canvas > 0] = int(s["object_id"])
    return out


def strokes_on(scribbles: dict, frame: int) -> list[dict]:
    """The strokes of a davisinteractive scribble dict that lie on ``frame``."""
    per_frame = scribbles.get("scribbles", [])
    return list(per_frame[frame]) if 0 <= frame < len(per_frame) else []


# -- optical flow ---------------------------------------------------------------------
def _flow_engine(method: str):
    if method == "dis" and hasattr(cv2, "DISOpticalFlow_create"):
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda a, b: dis.calc(a, b, None)
    if method not in ("dis", "farneback"):
        raise ValueError(f"unknown flow method '{method}' (dis or farneback)")
    return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.1, 0)


def fb_consistency(flow_ab: np.ndarray, flow_ba: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per-pixel confidence in [0, 1] of the flow a->b from the forward-backward check.

    flow_ab, flow_ba: (h, w, 2) float32 (dx, dy); grid: (h, w, 2) pixel coordinates. A pixel is
    consistent when flow_ba at its target cancels flow_ab (Sundaram et al. 2010 criterion:
    |w + w'|^2 <= 0.01 (|w|^2 + |w'|^2) + 0.5); the ratio r to that bound maps to exp(-(r/2)^2).
    Pixels whose target leaves the frame get 0.
    """
    h, w = flow_ab.shape[:2]
    target = grid + flow_ab
    back = cv2.remap(flow_ba, target[..., 0], target[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.sum((flow_ab + back) ** 2, axis=-1)
    bound = 0.01 * (np.sum(flow_ab ** 2, axis=-1) + np.sum(back ** 2, axis=-1)) + 0.5
    conf = np.exp(-0.25 * (err / bound) ** 2)
    inside = (target[..., 0] >= -0.5) & (target[..., 0] <= w - 0.5) & (target[..., 1] >= -0.5) & (target[..., 1] <= h - 0.5)
    return (conf * inside).astype(np.float32)


class FlowCache:
    """Flow between consecutive frames at the working resolution, computed once per video.

    ``fwd[t]``: (h, w, 2) flow t -> t+1; ``bwd[t]``: flow t+1 -> t (t = 0..T-2);
    ``cfwd[t]``/``cbwd[t]``: (h, w) forward-backward confidence of those flows.
    """

    def __init__(self, frames_small: np.ndarray, method: str = "dis") -> None:
        calc = _flow_engine(method)
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames_small]
        h, w = gray[0].shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.grid = np.stack([xs, ys], -1)
        self.fwd, self.bwd, self.cfwd, self.cbwd = [], [], [], []
        for t in range(len(gray) - 1):
            f = calc(gray[t], gray[t + 1]).astype(np.float32)
            b = calc(gray[t + 1], gray[t]).astype(np.float32)
            self.fwd.append(f)
            self.bwd.append(b)
            self.cfwd.append(fb_consistency(f, b, self.grid))
            self.cbwd.append(fb_consistency(b, f, self.grid))


# -- small helpers ----------------------------------------------------------------------
def _remap(img: np.ndarray, coords: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample (h, w[, C]) ``img`` at (h, w, 2) pixel ``coords`` (bilinear), any number of channels."""
    if img.ndim == 2 or img.shape[2] <= 4:
        return cv2.remap(img, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    parts = [cv2.remap(np.ascontiguousarray(img[..., i:i + 4]), coords[..., 0], coords[..., 1], cv2.INTER_LINEAR,
                       borderMode=border, borderValue=0) for i in range(0, img.shape[2], 4)]
    return np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2)


def _onehot(labels: np.ndarray, n: int) -> np.ndarray:
    """(h, w) ids -> (h, w, n) float32 one-hot."""
    return (labels[..., None] == np.arange(n)).astype(np.float32)


def _resize(img: np.ndarray, size_hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    h, w = size_hw
    if img.shape[:2] == (h, w):
        return img
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
    if img.ndim == 3 and img.shape[2] > 4:
        return np.concatenate([_resize(np.ascontiguousarray(img[..., i:i + 4]), size_hw, nearest).reshape(h, w, -1)
                               for i in range(0, img.shape[2], 4)], axis=2)
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out.reshape(h, w, *img.shape[2:]) if img.ndim == 3 else out


def stroke_regions(new_seeds: np.ndarray, prior: np.ndarray, cap: float, factor: float = 1.0) -> np.ndarray:
    """(h, w) int16 labels (-1 = none) of the regions that corrective strokes ask to relabel.

    A corrective stroke is drawn along the middle of a wrongly labelled region (the davisinteractive
    robot draws the skeleton of each error region; a person draws through its middle), and that region
    reaches from the stroke to the nearest pixel the current result (``prior``) already gives the
    stroke's label, on the one side, and about as far on the other. So each stroke pixel paints its
    label over a disc of radius ``factor`` times its distance to the nearest ``prior`` pixel of that
    label, where that distance is at most ``cap`` pixels (farther, the region is not bounded by the
    result's outline, as when the result misses the object entirely, and its width is unknown).
    """
    h, w = new_seeds.shape
    out = np.full((h, w), -1, np.int16)
    for lab in np.unique(new_seeds[new_seeds >= 0]):
        dist = cv2.distanceTransform((prior != lab).astype(np.uint8), cv2.DIST_L2, 5)
        canvas = np.zeros((h, w), np.uint8)
        ys, xs = np.nonzero(new_seeds == lab)
        d = dist[ys, xs]
        for y, x, r in zip(ys, xs, np.where(d <= cap, factor * d, 0.0), strict=True):
            if r >= 1:
                cv2.circle(canvas, (int(x), int(y)), int(r), 1, -1)
        out[canvas > 0] = lab
    out[new_seeds >= 0] = new_seeds[new_seeds >= 0]
    return out


def segment_annotated(image: np.ndarray, seeds: np.ndarray, num_objects: int, prior: np.ndarray | None,
                      new_seeds: np.ndarray | None = None, radius: float = 20.0, iters: int = 3,
                      fill: float = 0.0, fill_cap: float = 1.0,
                      refs: list[tuple[np.ndarray, np.ndarray]] | None = None, first_radius: float = 1.0,
                      change_zone: float = 2.0) -> np.ndarray:
    """Seeded segmentation of one frame into labels 0..K.

    image: (h, w, 3) uint8 RGB; seeds: (h, w) int16 stroke labels (-1 = no stroke), every stroke drawn
    on this frame so far; prior: (h, w) uint8 labels of the current result on this frame or None;
    new_seeds: this round's strokes only (changes are confined to ``change_zone * radius`` pixels around
    them when a prior exists); radius: in pixels, how far round 1 assumes an object extends around its
    strokes; fill, fill_cap: with a prior, the regions the new strokes are drawn through
    (:func:`stroke_regions` with ``cap = fill_cap * radius``, ``factor = fill``; 0 = off) are sure
    labels like the strokes; first_radius: without a prior, only the pixels within ``first_radius *
    radius`` of an object's strokes start as probably that object (the rest of the ``3 * radius`` zone
    starts as probable background), so the object's colour model is learnt from little more than its
    strokes (1.0 takes the whole ``radius`` disc, which on real footage brings in the background around
    a thin object: J&F of the first annotated frame 0.78 against 0.83 with 0.5 on the tuning set).
    Returns (h, w) uint8 labels; stroke pixels carry their stroke's label.
    """
    h, w = seeds.shape
    K = num_objects
    bgr = np.ascontiguousarray(image[..., ::-1])
    if prior is not None and fill > 0 and new_seeds is not None and (new_seeds >= 0).any():
        filled = stroke_regions(new_seeds, prior, fill_cap * radius, fill)
        seeds = np.where(seeds >= 0, seeds, filled).astype(seeds.dtype)
    has_seed = seeds >= 0
    if prior is not None:
        changeable = np.ones((h, w), bool)
        if new_seeds is not None and (new_seeds >= 0).any():
            dist = cv2.distanceTransform((new_seeds < 0).astype(np.uint8), cv2.DIST_L2, 3)
            changeable = dist <= change_zone * radius
        elif new_seeds is not None:
            changeable[:] = False   # nothing new drawn: keep the prior
    scores = np.zeros((K + 1, h, w), np.float32)
    scores[0] = 0.5
    for k in range(1, K + 1):
        obj_seed = seeds == k
        other_seed = has_seed & ~obj_seed
        if prior is None:
            if not obj_seed.any():
                continue
            dist_k = cv2.distanceTransform((~obj_seed).astype(np.uint8), cv2.DIST_L2, 3)
            probable = dist_k <= first_radius * radius
        else:
            probable = prior == k
        mask = np.where(probable, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        if prior is None:   # no background strokes yet: distractors far from the object's strokes stay out
            mask[dist_k > 3 * radius] = cv2.GC_BGD
        if prior is not None:
            mask[~changeable & probable] = cv2.GC_FGD
            mask[~changeable & ~probable] = cv2.GC_BGD
        mask[obj_seed] = cv2.GC_FGD
        mask[other_seed] = cv2.GC_BGD
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        unknown = (mask == cv2.GC_PR_FGD) | (mask == cv2.GC_PR_BGD)
        img, tri = bgr, mask
        if refs:   # trusted frames below this one: sure labels that only teach the colour models
            img = np.concatenate([bgr] + [np.ascontiguousarray(r[..., ::-1]) for r, _ in refs], 0)
            tri = np.concatenate([mask] + [np.where(lab == k, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
                                           for _, lab in refs], 0)
        tfg = (tri == cv2.GC_FGD) | (tri == cv2.GC_PR_FGD)
        if tfg.sum() >= 10 and (~tfg).sum() >= 10 and unknown.any():
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            try:
                # GrabCut's GMM initialisation draws from OpenCV's process-wide RNG: seed it so a
                # round's result does not depend on what ran before in the process (resume, trials).
                cv2.setRNGSeed(0)
                cv2.grabCut(img, tri, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)
            except cv2.error as exc:   # degenerate colour statistics: keep the trimap
                log.debug("grabCut failed (%s); using the seeds and prior as they are", exc)
            mask = tri[:h]
            fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        # objects claiming the same pixel: the prior, then the nearer stroke, decides
        near = np.exp(-cv2.distanceTransform((~obj_seed).astype(np.uint8), cv2.DIST_L2, 3) / max(radius, 1.0))
        scores[k] = fg + 0.25 * (probable if prior is not None else 0) + 0.2 * near * fg
    labels = scores.argmax(0).astype(np.uint8)
    labels[has_seed] = seeds[has_seed].astype(np.uint8)
    return labels


def clean_labels(labels: np.ndarray, seeds: np.ndarray, ref_area: np.ndarray, min_region: float,
                 stray: float) -> np.ndarray:
    """Drop the stray regions of an annotated frame's labels (a copy; dropped pixels become background).

    labels: (h, w) uint8 0..K; seeds: (h, w) int16 stroke labels (-1 = none); ref_area: (K+1,) each
    object's largest area on the annotated frames. A connected region of object k with no stroke of k
    goes when it is smaller than ``min_region * ref_area[k]`` (GrabCut speckle; an absent object's remnant
    scores J = 0 however small) or, when k has strokes on the frame, smaller than ``stray`` times the
    largest region that holds one of them (the strokes say where the object is; 0 = keep these).
    """
    out = labels.copy()
    for k in range(1, len(ref_area)):
        m = (labels == k).astype(np.uint8)
        if not m.any():
            continue
        n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        area = stats[:, cv2.CC_STAT_AREA]
        stroked = np.zeros(n, bool)
        stroked[np.unique(lab[seeds == k])] = True
        stroked[0] = False
        bound = min_region * ref_area[k]
        if stray > 0 and stroked.any():
            bound = max(bound, stray * area[stroked].max())
        drop = [i for i in range(1, n) if not stroked[i] and area[i] < bound]
        if drop:
            out[np.isin(lab, drop)] = 0
    return out


def _similarity(mask: np.ndarray, flow: np.ndarray, conf: np.ndarray, max_points: int = 400) -> np.ndarray | None:
    """(2, 3) similarity transform (rotation, uniform scale, shift) fitted with RANSAC to the flow of
    ``mask``'s flow-consistent pixels (``conf`` > 0.5); None when fewer than 12 such pixels or when
    under half of them agree with the fit (a non-rigid or badly tracked object)."""
    ys, xs = np.nonzero(mask & (conf > 0.5))
    if len(xs) < 12:
        return None
    if len(xs) > max_points:   # an even subsample: deterministic
        idx = np.linspace(0, len(xs) - 1, max_points).astype(int)
        ys, xs = ys[idx], xs[idx]
    src = np.stack([xs, ys], 1).astype(np.float32)
    dst = src + flow[ys, xs]
    M, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5,
                                             maxIters=200, confidence=0.99)
    if M is None or inliers is None or inliers.mean() < 0.5:
        return None
    return M


def _grabcut_refine(bgr: np.ndarray, warped: np.ndarray, core: np.ndarray, others: np.ndarray,
                    iters: int = 1, ring_factor: float = 0.25) -> np.ndarray:
    """(h, w) bool refinement of a warped soft mask by one GrabCut in its (enlarged) bounding box.

    bgr: (h, w, 3) uint8 frame; warped: (h, w) float in [0, 1]; core: (h, w) bool sure foreground;
    others: (h, w) bool sure background (the other objects' cores). The trimap: sure foreground on
    the core, probable foreground on the rest of the warped mask, probable background in a ring
    around it, sure background beyond it and on ``others``.
    """
    h, w = warped.shape
    m = warped > 0.5
    n = int(m.sum())
    ys, xs = np.nonzero(m)
    ring = max(2, int(round(ring_factor * np.sqrt(n))))
    y0, y1 = max(ys.min() - 2 * ring, 0), min(ys.max() + 2 * ring + 1, h)
    x0, x1 = max(xs.min() - 2 * ring, 0), min(xs.max() + 2 * ring + 1, w)
    crop = (slice(y0, y1), slice(x0, x1))
    mc = m[crop].astype(np.uint8)
    near = cv2.dilate(mc, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))) > 0
    tri = np.full(mc.shape, cv2.GC_BGD, np.uint8)
    tri[near] = cv2.GC_PR_BGD
    tri[mc > 0] = cv2.GC_PR_FGD
    tri[core[crop]] = cv2.GC_FGD
    tri[others[crop]] = cv2.GC_BGD
    out = np.zeros((h, w), bool)
    fg = (tri == cv2.GC_FGD) | (tri == cv2.GC_PR_FGD)
    if fg.sum() >= 10 and (~fg).sum() >= 10 and (tri == cv2.GC_BGD).any() and \
            ((tri == cv2.GC_FGD) | (tri == cv2.GC_PR_BGD)).any():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.setRNGSeed(0)
            cv2.grabCut(np.ascontiguousarray(bgr[crop]), tri, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)
        except cv2.error as exc:
            log.debug("grabCut refinement failed (%s); keeping the warped mask", exc)
        fg = (tri == cv2.GC_FGD) | (tri == cv2.GC_PR_FGD)
    out[crop] = fg
    return out


# -- the backend ------------------------------------------------------------------------
class ClassicBackend(VOSBackend):
    """Scribbles -> GrabCut on the annotated frame -> optical-flow propagation (see module doc).

    Options: ``work_size`` (longest side of the working resolution, default 432), ``flow``
    ('dis' or 'farneback'), ``decay`` (per-frame temporal confidence factor, default 0.97),
    ``anchor_confidence`` (probability given to the label on annotated frames, default 0.98),
    ``seed_radius`` (fraction of the working diagonal, default 0.04), ``grabcut_iters`` (3),
    ``colour_bins`` (histogram bins per RGB channel, 8), ``prior_blur`` (flow-error blur, fraction of the
    working diagonal, 0.01), ``prior_floor`` (least spatial prior, 1e-6: how far from the expected
    place a colour match may still win), ``prior_power`` (1.0), ``redetect`` (True),
    ``redetect_mass`` (0.2), ``redetect_radius`` (0.35), ``redetect_density`` (0.1): see
    :meth:`_redetect`; ``colour_feedback`` (0.3: the power of the colour likelihood in the carried
    label map, see :meth:`_chain`), ``min_region`` (0.05: see :meth:`_drop_small`), ``stroke_fill``
    (1.0) and ``fill_cap`` (0.5, in units of the seed radius): on a frame annotated again, each new
    stroke relabels the region it is drawn through (:func:`stroke_regions`; 0 = off); ``ref_anchors`` (0):
    how many of the nearest other annotated frames teach an annotated frame's GrabCut colour models
    (``refs`` of :func:`segment_annotated`; 0 = off); ``anchor_clean`` (True) and ``anchor_stray`` (0.0):
    :func:`clean_labels` on every newly segmented annotated frame; ``first_radius`` (0.5): the first
    segmentation's probable-object zone in units of the seed radius (``first_radius`` of
    :func:`segment_annotated`); ``change_zone`` (2.0): a correction changes the labels within this
    many seed radii of its strokes.
    """

    name = "classic"
    scribble_history = "last"

    def __init__(self, device: Any = "cpu", work_size: int = 432, flow: str = "dis", decay: float = 0.97,
                 anchor_confidence: float = 0.98, seed_radius: float = 0.04, grabcut_iters: int = 3,
                 colour_bins: int = 8, prior_blur: float = 0.01, prior_floor: float = 1e-6,
                 prior_power: float = 1.0, redetect: bool = True, redetect_mass: float = 0.2,
                 redetect_radius: float = 0.35, redetect_density: float = 0.1, colour_feedback: float = 0.3,
                 min_region: float = 0.05, propagation: str = "grabcut", refine_iters: int = 1,
                 prev_weight: float = 0.05, refine_ring: float = 0.25, core_erode: float = 0.08,
                 rigid: bool = True, refine: bool = True, feedback: str = "both", mix_colour: float = 0.5,
                 stroke_fill: float = 1.0, fill_cap: float = 0.5, ref_anchors: int = 0,
                 anchor_stray: float = 0.0, anchor_clean: bool = True, first_radius: float = 0.5,
                 change_zone: float = 2.0,
                 **options: Any) -> None:
        super().__init__(device=device, **options)
        _flow_engine(flow)   # fail early on an unknown method
        self.work_size = int(work_size)
        self.flow_method = flow
        self.decay = float(decay)
        self.anchor_confidence = float(anchor_confidence)
        self.seed_radius = float(seed_radius)
        self.grabcut_iters = int(grabcut_iters)
        self.colour_bins = int(colour_bins)
        self.prior_blur = float(prior_blur)
        self.prior_floor = float(prior_floor)
        self.prior_power = float(prior_power)
        self.redetect = bool(redetect)
        self.redetect_mass = float(redetect_mass)
        self.redetect_radius = float(redetect_radius)
        self.redetect_density = float(redetect_density)
        self.colour_feedback = float(colour_feedback)
        self.min_region = float(min_region)
        if propagation not in ("grabcut", "colour"):
            raise ValueError(f"unknown propagation '{propagation}' (grabcut or colour)")
        self.propagation = propagation
        self.refine_iters = int(refine_iters)
        self.prev_weight = float(prev_weight)
        self.refine_ring = float(refine_ring)
        self.core_erode = float(core_erode)
        self.rigid = bool(rigid)
        self.refine = bool(refine)
        self.feedback = str(feedback)
        self.mix_colour = float(mix_colour)
        self.stroke_fill = float(stroke_fill)
        self.fill_cap = float(fill_cap)
        self.ref_anchors = int(ref_anchors)
        self.anchor_stray = float(anchor_stray)
        self.anchor_clean = bool(anchor_clean)
        self.first_radius = float(first_radius)
        self.change_zone = float(change_zone)
        self._chains: dict[tuple[int, int], tuple] = {}
        self._colour_chains: dict[tuple[int, int], tuple[bytes, dict]] = {}
        self._cidx: np.ndarray | None = None
        self._flow: FlowCache | None = None
        self.anchors: dict[int, np.ndarray] = {}
        self.prev: np.ndarray | None = None

    # -- state ------------------------------------------------------------------------
    def _state_keys(self) -> list[str]:
        # anchors: full-resolution label map per annotated frame; prev: the last result at the
        # working resolution (T, h, w, K+1) float32. The flow cache depends on the frames only.
        return super()._state_keys() + ["anchors", "prev"]

    def _start(self) -> None:
        T, H, W = self.frames.shape[:3]
        s = min(1.0, self.work_size / max(H, W))
        self.work_hw = (max(8, int(round(H * s))), max(8, int(round(W * s))))
        self.small = np.stack([_resize(f, self.work_hw) for f in self.frames])
        self._flow = None
        self._cidx = None
        self._chains = {}
        self._colour_chains = {}
        self.anchors = {}
        self.prev = None

    def flow(self) -> FlowCache:
        """The video's flow cache (computed on first use, then reused by every round)."""
        if self._flow is None:
            self._flow = FlowCache(self.small, self.flow_method)
        return self._flow

    # -- one round --------------------------------------------------------------------
    def _interact(self, frame: int, scribbles: dict) -> RoundOutput:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.flow()
        timings["flow"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self.anchors[frame] = self._segment(frame, strokes_on(scribbles, frame))
        timings["annotated_frame"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self._propagate(frame)
        timings["propagation"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        masks, probs = self._full_resolution()
        timings["upsample"] = time.perf_counter() - t0
        return RoundOutput(masks=masks, probs=probs, timings=timings)

    def _segment(self, frame: int, new_strokes: list[dict]) -> np.ndarray:
        """Full-resolution (H, W) uint8 labels of annotated ``frame`` from all its strokes so far."""
        H, W = self.frames.shape[1:3]
        h, w = self.work_hw
        strokes = [s for f, sc in self.scribbles for s in strokes_on(sc, frame) if f == frame]
        K = self.num_objects
        strokes = [s for s in strokes if 0 <= int(s["object_id"]) <= K]
        new_strokes = [s for s in new_strokes if 0 <= int(s["object_id"]) <= K]
        seeds = rasterize_strokes(strokes, h, w)
        new_seeds = rasterize_strokes(new_strokes, h, w)
        prior = None
        if frame in self.anchors:
            prior = _resize(self.anchors[frame], (h, w), nearest=True)
        elif self.prev is not None:
            prior = self.prev[frame].argmax(-1).astype(np.uint8)
        radius = self.seed_radius * float(np.hypot(h, w))
        others = sorted((a for a in self.anchors if a != frame), key=lambda a: (abs(a - frame), a))
        small = {a: _resize(self.anchors[a], (h, w), nearest=True) for a in others}
        refs = [(self.small[a], small[a]) for a in others[: self.ref_anchors]]
        labels = segment_annotated(self.small[frame], seeds, K, prior, new_seeds if prior is not None else None,
                                   radius=radius, iters=self.grabcut_iters, fill=self.stroke_fill,
                                   fill_cap=self.fill_cap, refs=refs, first_radius=self.first_radius,
                                   change_zone=self.change_zone)
        if prior is not None and not (new_seeds >= 0).any():
            labels = prior
        elif self.anchor_clean:
            ref_area = np.bincount(labels.ravel(), minlength=K + 1)[:K + 1].astype(np.float64)
            for lab in small.values():
                ref_area = np.maximum(ref_area, np.bincount(lab.ravel(), minlength=K + 1)[:K + 1])
            labels = clean_labels(labels, seeds, ref_area, self.min_region, self.anchor_stray)
            labels[seeds >= 0] = seeds[seeds >= 0].astype(np.uint8)
        full = _resize(labels, (H, W), nearest=True) if (h, w) != (H, W) else labels.copy()
        if (h, w) != (H, W):   # smoother object outlines than nearest-neighbour upsampling
            soft = _resize(_onehot(labels, K + 1), (H, W))
            full = soft.argmax(-1).astype(np.uint8)
        exact = rasterize_strokes(strokes, H, W)
        full[exact >= 0] = exact[exact >= 0].astype(np.uint8)
        return full

    def _anchor_small(self, a: int) -> np.ndarray:
        """(h, w, K+1) soft one-hot of anchor ``a`` at the working resolution (area-averaged)."""
        return _resize(_onehot(self.anchors[a], self.num_objects + 1), self.work_hw)

    def _colour_model(self, a: int) -> np.ndarray:
        """(K+1, bins**3) per-label colour likelihoods of anchor ``a`` (Laplace-smoothed histograms)."""
        labels = _resize(self.anchors[a], self.work_hw, nearest=True)
        idx = self._colour_index()[a]
        nb = self.colour_bins ** 3
        lik = np.empty((self.num_objects + 1, nb), np.float32)
        for k in range(self.num_objects + 1):
            hist = np.bincount(idx[labels == k], minlength=nb).astype(np.float64)
            hist = hist + 0.01 * hist.sum() / nb + 1e-3
            lik[k] = hist / hist.sum()
        return lik

    def _colour_index(self) -> np.ndarray:
        if self._cidx is None:
            b = self.colour_bins
            q = (self.small.astype(np.int32) * b) // 256
            self._cidx = (q[..., 0] * b + q[..., 1]) * b + q[..., 2]
        return self._cidx

    def _chain(self, a: int, stop: int) -> dict[int, np.ndarray]:
        """Carry anchor ``a`` towards ``stop`` (exclusive), one frame at a time.

        The chain's state is a hard label map (one-hot). Each step warps it by the flow (trusted
        where the forward-backward check passes, replaced by a broad blur where it fails), blurs it
        by the expected flow error: that is the spatial prior. The frame's estimate is the prior
        times the anchor's colour likelihood, normalised. The next state is the arg-max of the
        prior times the likelihood raised to ``colour_feedback`` (< 1): colour snaps the outline
        back onto the object when the flow drifts, but weakly enough that it cannot pull the object
        into look-alike background frame after frame; and re-binarising every step stops the blurs
        from diffusing the object away. Returns {t: (h, w, K+1) estimate}.
        """
        step = 1 if stop > a else -1
        tag = self.anchors[a].tobytes()
        cached = self._colour_chains.get((a, step))
        wanted = range(a + step, stop, step)
        if cached is not None and cached[0] == tag and all(t in cached[1] for t in wanted):
            # a chain depends only on its anchor and the frames: the part still needed is reused
            out = {t: cached[1][t] for t in wanted}
            self._colour_chains[(a, step)] = (tag, out)
            return dict(out)
        out = self._colour_chain(a, stop)
        self._colour_chains[(a, step)] = (tag, out)
        return dict(out)

    def _colour_chain(self, a: int, stop: int) -> dict[int, np.ndarray]:
        """:meth:`_chain` without the cache."""
        fc = self.flow()
        lik = self._colour_model(a)
        lik_feedback = lik ** self.colour_feedback   # on the (K+1, bins**3) table, not per pixel
        cidx = self._colour_index()
        P = self._anchor_small(a)
        step = 1 if stop > a else -1
        h, w = self.work_hw
        sigma = self.prior_blur * float(np.hypot(h, w))
        K1 = self.num_objects + 1
        mass0 = P.sum((0, 1))
        last: dict[int, np.ndarray] = {}
        out = {}
        for t in range(a + step, stop, step):
            if step == 1:   # flow from t back to the previous frame of the chain, and its check
                back, conf = fc.bwd[t - 1], fc.cbwd[t - 1]
            else:
                back, conf = fc.fwd[t], fc.cfwd[t]
            warped = _remap(P, fc.grid + back)
            broad = cv2.GaussianBlur(P, (0, 0), 3 * sigma).reshape(h, w, K1)
            prior = conf[..., None] * warped + (1 - conf[..., None]) * broad
            prior = cv2.GaussianBlur(prior, (0, 0), sigma).reshape(h, w, K1)
            prior = np.maximum(prior, self.prior_floor) ** self.prior_power
            like = lik[:, cidx[t]]
            like_c = np.moveaxis(like, 0, -1)
            est = prior * like_c
            est = (est / est.sum(-1, keepdims=True)).astype(np.float32)
            P = _onehot((prior * np.moveaxis(lik_feedback[:, cidx[t]], 0, -1)).argmax(-1), K1)
            if self.redetect:
                for k, region in self._redetect(P, like, mass0, last):
                    for q in (P, est):
                        q[region] *= 0.1
                        q[region, k] += 0.9
            out[t] = est
        return out

    def _redetect(self, P: np.ndarray, like: np.ndarray, mass0: np.ndarray,
                  last: dict[int, np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """Re-detect objects the chain has lost (after an occlusion or an exit).

        P: (h, w, K+1) carried label map of this frame; like: (K+1, h, w) colour likelihoods; mass0: (K+1,)
        pixel mass of each label on the anchor; last: {k: (x, y)} last centroid where object k was
        tracked with at least half its anchor mass (updated here). An object whose mass fell under
        ``redetect_mass`` of its anchor mass is searched for as the largest connected region whose
        density of pixels whose colour is at least twice likelier under its model than under every
        other label's exceeds ``redetect_density`` (blurred at the object's scale), of 0.3-2.5 times its
        anchor area, within ``redetect_radius`` (fraction of the diagonal) of its
        last position; such a region gets the label with probability 0.9. Returns
        [(k, (h, w) bool region)] for the caller to apply.
        """
        h, w = P.shape[:2]
        mass = P.sum((0, 1))
        found: list[tuple[int, np.ndarray]] = []
        for k in range(1, P.shape[2]):
            if mass0[k] <= 0:
                continue
            if mass[k] >= 0.5 * mass0[k]:
                ys, xs = np.nonzero(P[..., k] > 0.5)
                if len(xs):
                    last[k] = np.array([xs.mean(), ys.mean()])
                continue
            if mass[k] >= self.redetect_mass * mass0[k] or k not in last:
                continue
            others = np.delete(like, k, axis=0).max(0)
            # a textured object has only a fraction of colour-distinctive pixels: threshold their
            # local density at the object's scale rather than single pixels
            density = cv2.GaussianBlur((like[k] > 2 * others).astype(np.float32), (0, 0),
                                       max(1.0, 0.15 * float(np.sqrt(mass0[k]))))
            cand = (density > self.redetect_density).astype(np.uint8)
            n, lab, stats, cents = cv2.connectedComponentsWithStats(cand, connectivity=8)
            if n <= 1:
                continue
            areas = stats[1:, cv2.CC_STAT_AREA]
            dist = np.hypot(*(cents[1:] - last[k]).T)
            ok = (areas >= 0.3 * mass0[k]) & (areas <= 2.5 * mass0[k]) & (dist <= self.redetect_radius * np.hypot(h, w))
            if not ok.any():
                continue
            best = 1 + int(np.argmax(np.where(ok, areas, -1)))
            found.append((k, lab == best))
        return found

    def _propagate(self, frame: int) -> None:
        """Recompute the frames between the anchors enclosing ``frame``; keep the others."""
        if self.propagation == "grabcut":
            self._propagate_refined(frame)
            return
        T = len(self.frames)
        K1 = self.num_objects + 1
        h, w = self.work_hw
        anchors = sorted(self.anchors)
        before = [a for a in anchors if a < frame]
        after = [a for a in anchors if a > frame]
        lo = before[-1] if before else -1
        hi = after[0] if after else T
        if self.prev is None:
            self.prev = np.full((T, h, w, K1), 1.0 / K1, np.float32)
        estimates: dict[int, list[tuple[np.ndarray, float]]] = {t: [] for t in range(lo + 1, hi)}
        for a in anchors:
            self.prev[a] = self._anchor_small(a)
        ref = self.prev[anchors].sum((1, 2)).max(0)   # (K+1,) each label's largest anchor area
        for a, stop in ((lo, frame), (frame, lo), (frame, hi), (hi, frame)):
            if a < 0 or a >= T:
                continue
            for t, p in self._chain(a, stop).items():
                estimates[t].append((p, self.decay ** abs(t - a)))
        for t, ests in estimates.items():
            if t in self.anchors or not ests:
                continue
            tau = max(d for _, d in ests)
            merged = sum(d * p for p, d in ests) / sum(d for _, d in ests)
            self.prev[t] = tau * merged + (1.0 - tau) / K1
            if self.min_region > 0:
                self._drop_small(self.prev[t], ref)

    # -- propagation with per-frame GrabCut refinement (the default) -----------------------
    def _propagate_refined(self, frame: int) -> None:
        """Frames strictly between the anchors enclosing ``frame`` get the confidence-weighted fusion
        of the chains from those anchors (:meth:`_refined_chain`):
        ``(w_L c_L p_L + w_R c_R p_R + prev_weight p_prev) / (w_L c_L + w_R c_R + prev_weight)`` with
        linear temporal weights ``w`` between the enclosing anchors (1 beyond the last one), chain
        confidences ``c`` and the previous round's estimate ``p_prev``; then, as before,
        ``tau * fused + (1 - tau) / (K + 1)`` with ``tau = decay**distance``."""
        T = len(self.frames)
        K1 = self.num_objects + 1
        h, w = self.work_hw
        anchors = sorted(self.anchors)
        if self.prev is None:
            self.prev = np.full((T, h, w, K1), 1.0 / K1, np.float32)
        for a in anchors:
            self.prev[a] = self._anchor_small(a)
        before = [a for a in anchors if a < frame]
        after = [a for a in anchors if a > frame]
        lo = before[-1] if before else -1
        hi = after[0] if after else T
        colour: dict[int, list[tuple[np.ndarray, float]]] = {t: [] for t in range(lo + 1, hi)}
        if self.mix_colour > 0:
            for a, stop in ((lo, frame), (frame, lo), (frame, hi), (hi, frame)):
                if 0 <= a < T:
                    for t, p in self._chain(a, stop).items():
                        colour[t].append((p, self.decay ** abs(t - a)))
        for left, right in ((lo, frame), (frame, hi)):
            fwd = self._refined_chain(left, right - left - 1, +1) if left >= 0 else []
            bwd = self._refined_chain(right, right - left - 1, -1) if right < T else []
            for i, t in enumerate(range(left + 1, right)):
                num = self.prev_weight * self.prev[t]
                den = np.full((h, w, 1), self.prev_weight, np.float32)
                for chain, anchor in ((fwd, left), (bwd, right)):
                    if not chain:
                        continue
                    labels, conf = chain[i] if chain is fwd else chain[right - t - 1]
                    if left >= 0 and right < T:
                        wt = 1.0 - abs(t - anchor) / (right - left)
                    else:
                        wt = 1.0
                    c = (wt * conf.astype(np.float32))[..., None]
                    num = num + c * self._soft_labels(labels)
                    den = den + c
                fused = num / den
                if colour[t]:
                    c_est = sum(d * p for p, d in colour[t]) / sum(d for _, d in colour[t])
                    fused = (1 - self.mix_colour) * fused + self.mix_colour * c_est
                dist = min(abs(t - x) for x in (left, right) if 0 <= x < T)
                tau = self.decay ** dist
                self.prev[t] = tau * fused + (1.0 - tau) / K1

    def _soft_labels(self, labels: np.ndarray) -> np.ndarray:
        """(h, w) ids -> (h, w, K+1) float32 one-hot, softened over about a pixel at the outlines."""
        K1 = self.num_objects + 1
        soft = cv2.GaussianBlur(_onehot(labels, K1), (3, 3), 0.8).reshape(labels.shape + (K1,))
        return soft / soft.sum(-1, keepdims=True)

    def _refined_chain(self, a: int, length: int, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first ``length`` frames of the chain from anchor ``a`` in direction ``step`` (+1/-1):
        [(labels (h, w) uint8, confidence (h, w) float16)], frame ``a + step * (i + 1)`` at index i.

        A chain depends only on its anchor's labels (and the frames), so it is cached and extended.
        Each step: per object, a similarity transform fitted with RANSAC to the flow of the mask's
        flow-consistent pixels moves the mask (the dense backward warp when too few pixels agree);
        the warped mask is refined by a GrabCut on the new frame in the object's bounding box, seeded
        by its eroded core (sure foreground where the flow was consistent), the ring beyond a dilation
        (sure background) and the other objects' cores (sure background); overlaps go to the object
        whose warped mask is stronger. The confidence map is carried by the same flow and multiplied
        by the forward-backward consistency, so a pixel whose source left the frame (or was occluded)
        has none.
        """
        T = len(self.frames)
        length = max(0, min(length, (T - 1 - a) if step > 0 else a))
        if length == 0:
            return []
        key = (a, step)
        h, w = self.work_hw
        anchor = _resize(self.anchors[a], (h, w), nearest=True)
        tag = anchor.tobytes()
        cached = self._chains.get(key)
        fresh = cached is None or cached[0] != tag
        chain, last = ([], {}) if fresh else (cached[1], cached[2])
        if len(chain) >= length:
            self._chains[key] = (tag, chain[:length], last)   # only what is still needed is kept
            return [(lab, c) for lab, c, _ in chain[:length]]
        fc = self.flow()
        state = chain[-1][2] if chain else anchor
        conf = chain[-1][1].astype(np.float32) if chain else np.ones((h, w), np.float32)
        K1 = self.num_objects + 1
        mass0 = np.bincount(anchor.ravel(), minlength=K1)[:K1].astype(np.float64)
        lik = self._colour_model(a) if self.redetect else None
        t = a + step * len(chain)
        while len(chain) < length:
            nxt = t + step
            if step > 0:
                fwd, back, cback = fc.fwd[t], fc.bwd[t], fc.cbwd[t]
                cfwd = fc.cfwd[t]
            else:
                fwd, back, cback = fc.bwd[nxt], fc.fwd[nxt], fc.cfwd[nxt]
                cfwd = fc.cbwd[nxt]
            labels, state = self._step_labels(state, self.small[nxt], fwd, cfwd, back)
            conf = _remap(conf, fc.grid + back) * cback
            if lik is not None:   # an object lost after an exit or an occlusion: search by colour
                like = lik[:, self._colour_index()[nxt]]
                for k, region in self._redetect(_onehot(labels, K1), like, mass0, last):
                    labels, state = labels.copy(), state.copy()
                    labels[region] = k
                    state[region] = k
                    conf[region] = np.maximum(conf[region], 0.5)
            chain.append((labels, conf.astype(np.float16), state))
            t = nxt
        self._chains[key] = (tag, chain, last)
        return [(lab, c) for lab, c, _ in chain[:length]]

    def _warp_object(self, m: np.ndarray, fwd: np.ndarray, cfwd: np.ndarray,
                     back: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(h, w) float32 mask ``m`` moved one step of a chain, and the similarity transform that moved it:
        fitted to the flow ``fwd`` (consistency ``cfwd``) by :func:`_similarity` when ``rigid``, else (or
        when none fits, then None) the dense backward warp by ``back``."""
        h, w = m.shape
        M = _similarity(m, fwd, cfwd) if self.rigid else None
        if M is not None:
            return cv2.warpAffine(m.astype(np.float32), M, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0), M
        return _remap(m.astype(np.float32), self.flow().grid + back, cv2.BORDER_CONSTANT), None

    def _step_labels(self, labels: np.ndarray, image: np.ndarray, fwd: np.ndarray, cfwd: np.ndarray,
                     back: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(refined labels, carried state), both (h, w) uint8, of the next frame from the carried state
        ``labels`` of this one; see :meth:`_refined_chain`."""
        h, w = labels.shape
        K = self.num_objects
        warped = np.zeros((K + 1, h, w), np.float32)
        for k in range(1, K + 1):
            m = labels == k
            if not m.any():
                continue
            warped[k] = self._warp_object(m, fwd, cfwd, back)[0]
        cores = np.zeros((K + 1, h, w), bool)
        for k in range(1, K + 1):
            mk = warped[k] > 0.5
            if mk.sum() >= 4:
                r = max(1, int(round(self.core_erode * np.sqrt(mk.sum()))))
                cores[k] = cv2.erode(mk.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                                    (2 * r + 1, 2 * r + 1))) > 0
        score = np.zeros((K + 1, h, w), np.float32)
        score[0] = 0.5
        bgr = np.ascontiguousarray(image[..., ::-1])
        for k in range(1, K + 1):
            mk = warped[k] > 0.5
            n = int(mk.sum())
            if n < 4:
                continue
            if self.refine:
                refined = _grabcut_refine(bgr, warped[k], cores[k], cores[np.arange(K + 1) != k].any(0) & ~cores[k],
                                          self.refine_iters, self.refine_ring)
            else:
                refined = mk
            score[k] = refined * (0.5 + warped[k])
        out = score.argmax(0).astype(np.uint8)
        if self.feedback == "refined":
            return out, out
        if self.feedback == "warped":
            warped[0] = 0.5
            return out, warped.argmax(0).astype(np.uint8)
        # "both": the refinement may move the outline by at most a few pixels from the warp
        state = np.zeros_like(out)
        for k in range(1, K + 1):
            mk = (warped[k] > 0.5).astype(np.uint8)
            if not mk.any():
                continue
            r = max(1, int(round(0.03 * np.sqrt(mk.sum()))))
            near = cv2.dilate(mk, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
            state[(out == k) & near] = k
        return out, state

    def _drop_small(self, P: np.ndarray, ref: np.ndarray) -> None:
        """In place on (h, w, K+1) ``P``: connected regions of arg-max label k smaller than
        ``min_region * ref[k]`` pixels lose label k (its probability there goes to 0)."""
        am = P.argmax(-1)
        for k in range(1, P.shape[2]):
            if ref[k] <= 0:
                continue
            m = (am == k).astype(np.uint8)
            if not m.any():
                continue
            n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            small = np.nonzero(stats[1:, cv2.CC_STAT_AREA] < self.min_region * ref[k])[0] + 1
            if len(small):
                region = np.isin(lab, small)
                P[region, k] = 0.0
                P[region] /= P[region].sum(-1, keepdims=True)

    def _full_resolution(self) -> tuple[np.ndarray, np.ndarray]:
        """Upsample the working-resolution result: masks (T, H, W) uint8, probs (T, K+1, H, W) float32."""
        T, H, W = self.frames.shape[:3]
        K1 = self.num_objects + 1
        probs = np.empty((T, K1, H, W), np.float32)
        masks = np.empty((T, H, W), np.uint8)
        c = self.anchor_confidence
        low, high = (1 - c) / (K1 - 1), c
        for t in range(T):
            if t in self.anchors:
                masks[t] = self.anchors[t]
                for k in range(K1):
                    probs[t, k] = np.where(masks[t] == k, high, low)
                continue
            small = self.prev[t]   # rows sum to 1; bilinear weights keep that up to rounding
            best = probs[t, 0]
            best[:] = _resize(np.ascontiguousarray(small[..., 0]), (H, W))
            best = best.copy()
            mask = masks[t]
            mask[:] = 0
            for k in range(1, K1):   # arg-max over planes: much faster than argmax(-1) here
                plane = probs[t, k]
                plane[:] = _resize(np.ascontiguousarray(small[..., k]), (H, W))
                np.copyto(mask, k, where=plane > best)
                np.maximum(best, plane, out=best)
        return masks, probs
