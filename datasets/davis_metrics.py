"""Per-frame, per-object region (J) and boundary (F) measures, equal to davisinteractive's (a part: any layer may use it).

The benchmark's ``batched_jaccard`` and ``batched_f_measure`` (davisinteractive 1.0.4,
``davisinteractive/metrics/jaccard.py``) define the numbers this project reports; they are the
reference in ``tests/test_fast_metrics.py``. Their definitions, as implemented here:

- Objects: ids ``1..nb_objects``, or when ``nb_objects`` is None the ids found in ``y_true``
  (values in 1..254). A pixel belongs to object k where the label equals k (255 and any other
  value belong to no object). Labels are cast to integers first (as ``np.asarray(y, int)``).
- J of one frame and object: ``|A & B| / |A | B|``, and 1 when the union is empty.
- F: boundary maps as D. Martin's ``seg2bmap`` makes them (pixel (y, x) is a boundary pixel when
  it differs from its east, south or south-east neighbour, outside the image counting as
  background; on the last row only the east neighbour counts, on the last column only the south
  one, and the bottom-right pixel never is one); each map dilated with ``skimage.morphology.disk(r)``
  as ``cv2.dilate`` does (pixels outside the image ignored), ``r = ceil(bound_th * sqrt(H^2 + W^2))`` (``bound_th`` itself when >= 1);
  precision = predicted boundary pixels within the dilated true boundary / predicted boundary
  pixels, recall the other way round; no predicted boundary: precision 1, recall 0 (1, 1 if no
  true boundary either); no true boundary only: precision 0, recall 1; F = 2PR / (P + R), 0 when
  P + R = 0.

Why it is faster (same numbers): the labels are brought to uint8 once; every measure of a
(frame, object) is computed inside the bounding box of both masks grown by one pixel, where all
boundary pixels lie (dilating inside that box is exact because dilation ignores pixels outside
the image, and outside the box there are no boundary pixels to reach into it); the boundary map
is one 2x2 morphological gradient; only boundary pixels not on the other boundary are tested
against the dilation, which runs on their box alone, row by row (each row of the disk is a
horizontal segment).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

__all__ = ["batched_jaccard", "batched_f_measure", "jaccard_and_f", "boundary_map", "MaskScorer"]


# -- inputs --------------------------------------------------------------------------------------
def _as_int(y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == np.bool_:
        return y.view(np.uint8)
    if not np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.int64)           # as the package's np.asarray(y, dtype=int): truncation
    return y


def _to_u8(y: np.ndarray) -> np.ndarray:
    """Integer labels -> uint8 labels with the same object membership for ids 1..254: values
    above 255 (and, through the unsigned view, negative ones) become 255, which is no object's."""
    if y.dtype == np.uint8:
        return y
    unsigned = y.view(np.dtype(f"u{y.dtype.itemsize}")) if np.issubdtype(y.dtype, np.signedinteger) else y
    out = np.empty(y.shape, np.uint8)
    np.minimum(unsigned, 255, out=out, casting="unsafe")
    return out


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.ndim != 3:
        raise ValueError("y_true array must have 3 dimensions.")
    if y_pred.ndim != 3:
        raise ValueError("y_pred array must have 3 dimensions.")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape. {y_true.shape} != {y_pred.shape}")


def _object_ids(y_true: np.ndarray, nb_objects: int | None) -> np.ndarray:
    if nb_objects is None:
        ids = np.unique(y_true[(y_true < 255) & (y_true > 0)])
    else:
        ids = np.arange(1, int(nb_objects) + 1, dtype=np.int64)
    if len(ids) == 0:
        raise ValueError("Number of objects in y_true should be higher than 0.")
    return ids


# -- boundary maps and the disk ------------------------------------------------------------------
_BLOCK = np.ones((2, 2), np.uint8)


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """(h, w) bool boundary map of a (h, w) mask, as ``seg2bmap`` makes it at full size.

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour, i.e.
    when the 2x2 block it starts is not uniform; on the last row (column) the block is cut to the
    pixel and its east (south) neighbour, and at the bottom-right corner to the pixel alone, which
    are the special rules of ``seg2bmap``. So the map is the morphological gradient (2x2 dilation
    minus 2x2 erosion, anchored at the top-left, pixels outside the image ignored).

    On a crop whose last row and column are background (and whose next row and column outside the
    crop are too) the same holds: ignoring the row beyond changes nothing where the block is all 0."""
    seg = np.ascontiguousarray(seg, dtype=bool).view(np.uint8)
    return cv2.morphologyEx(seg, cv2.MORPH_GRADIENT, _BLOCK, anchor=(0, 0)).view(bool)


def _dilate_disk(b: np.ndarray, r: int) -> np.ndarray:
    """(h, w) bool dilated by ``skimage.morphology.disk(r)`` (integer r), pixels outside ignored.

    The disk's row dy spans |dx| <= w(dy) = floor(sqrt(r^2 - dy^2)): dilate each row horizontally by
    every distinct w (each from the previous one, so in few steps), then take, for every dy, the
    maximum with the rows dy above and below dilated by w(dy)."""
    widths, steps = _row_steps(r)
    rows: dict[int, np.ndarray] = {0: b.view(np.uint8)}
    prev = rows[0]
    for w, kernel in steps:
        prev = rows[w] = cv2.dilate(prev, kernel)
    out = rows[widths[0]].copy()
    for dy in range(1, min(r, out.shape[0] - 1) + 1):
        hw = rows[widths[dy]]
        np.maximum(out[dy:], hw[:-dy], out=out[dy:])
        np.maximum(out[:-dy], hw[dy:], out=out[:-dy])
    return out.view(bool)


def bound_pixels(shape: Sequence[int], bound_th: float = 0.008) -> float:
    """The dilation radius of an (H, W) frame: ``bound_th`` if >= 1, else ceil(bound_th * diagonal)."""
    return bound_th if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm(shape)))


# -- one (frame, object) inside its box ----------------------------------------------------------
def _presence(labels: np.ndarray, ids: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per object id: rows (T, H) and columns (T, W) of the (T, H, W) labels that hold it.

    For uint8 labels and at most 31 objects, one pass: each label becomes a bit (a lookup table),
    OR-reduced along rows and along columns."""
    T, H, W = labels.shape
    if labels.dtype == np.uint8 and len(ids) <= 31 and H * T * W > 0:
        bits = np.uint8 if len(ids) <= 8 else np.uint16 if len(ids) <= 16 else np.int32   # narrow: less to write
        lut = np.zeros(256, bits)
        lut[np.asarray(ids, np.int64)] = (1 << np.arange(len(ids), dtype=np.int64)).astype(bits)
        bits = cv2.LUT(labels.reshape(T * H, W), lut).reshape(T, H, W)
        rows, cols = np.bitwise_or.reduce(bits, axis=2), np.bitwise_or.reduce(bits, axis=1)
        return [((rows >> i) & 1 == 1, (cols >> i) & 1 == 1) for i in range(len(ids))]
    out = []
    for obj in ids:
        m = (labels == obj).view(np.uint8)
        out.append((m.max(axis=2).view(bool), m.max(axis=1).view(bool)))
    return out


def _span(a: np.ndarray, b: np.ndarray, n: int) -> tuple[int, int] | None:
    """[lo, hi) of the rows (or columns) where either mask has pixels, grown by one on each side
    within [0, n) (the boundary lies half a pixel towards the origin); None if there are none."""
    idx = np.flatnonzero(a | b)
    if len(idx) == 0:
        return None
    return max(int(idx[0]) - 1, 0), min(int(idx[-1]) + 2, n)


def _region_dilate(src: np.ndarray, box: tuple[int, int, int, int], radius: float) -> np.ndarray:
    """``src`` (h, w) bool dilated by ``skimage.morphology.disk(radius)`` as ``cv2.dilate`` does,
    evaluated on ``box`` = (y0, y1, x0, x1) only: the dilation runs on the box grown by the radius,
    beyond which no source pixel can reach the box."""
    h, w = src.shape
    y0, y1, x0, x1 = box
    r = int(np.ceil(radius))                # no disk pixel lies farther from its centre
    sy0, sy1, sx0, sx1 = max(y0 - r, 0), min(y1 + r, h), max(x0 - r, 0), min(x1 + r, w)
    region = np.ascontiguousarray(src[sy0:sy1, sx0:sx1])
    if float(radius) != r or region.size <= _SMALL:   # one call with the whole disk
        dil = cv2.dilate(region.view(np.uint8), _disk(radius)).view(bool)
    else:                                              # row by row: less work per pixel
        dil = _dilate_disk(region, r)
    return dil[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0]


def _bbox(m: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the True pixels of a (h, w) bool array, None if there are none."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(m).view(np.uint8))
    if w == 0:
        return None
    return y, y + h, x, x + w


def _matched(src: np.ndarray, dst: np.ndarray, n_dst: int, radius: float) -> int:
    """How many of the ``n_dst`` pixels of the boundary ``dst`` lie within the disk of a pixel of ``src``
    (both (h, w) bool), i.e. on ``dilate(src, disk)``. Pixels on ``src`` itself match; the others are
    tested on the dilation of ``src`` inside their bounding box only."""
    rest = dst & ~src
    n_rest = int(np.count_nonzero(rest))
    if n_rest == 0:
        return n_dst
    box = _bbox(rest)
    y0, y1, x0, x1 = box
    return n_dst - n_rest + int(np.count_nonzero(rest[y0:y1, x0:x1] & _region_dilate(src, box, radius)))


#: regions up to this many pixels are dilated by the disk in one call (fewer calls), larger ones row
#: by row (less work per pixel)
_SMALL = 6000


@lru_cache(maxsize=16)
def _row_steps(r: int) -> tuple[list[int], list[tuple[int, np.ndarray]]]:
    """The disk's half-widths w(dy), dy = 0..r, and the steps from one distinct width to the next
    (width, 1 x (2 * increase + 1) kernel)."""
    widths = [int(np.floor(np.sqrt(r * r - dy * dy))) for dy in range(r + 1)]
    steps, prev = [], 0
    for w in sorted(set(widths) - {0}):
        steps.append((w, np.ones((1, 2 * (w - prev) + 1), np.uint8)))
        prev = w
    return widths, steps


@lru_cache(maxsize=16)
def _disk(radius: float) -> np.ndarray:
    from skimage.morphology import disk

    return disk(radius).astype(np.uint8)


def _f_value(gt_b: np.ndarray, pr_b: np.ndarray, radius: float) -> float:
    n_fg, n_gt = int(np.count_nonzero(pr_b)), int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = _matched(gt_b, pr_b, n_fg, radius) / float(n_fg)
        recall = _matched(pr_b, gt_b, n_gt, radius) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _prepare(y_true, y_pred, nb_objects: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true, y_pred = _as_int(y_true), _as_int(y_pred)
    _check(y_true, y_pred)
    ids = _object_ids(y_true, nb_objects)
    if int(ids.max()) < 255:
        y_true, y_pred = _to_u8(y_true), _to_u8(y_pred)
    return y_true, y_pred, ids


def _gt_pieces(gt: np.ndarray, ids: np.ndarray, presence: list) -> dict[tuple[int, int], tuple]:
    """Per (frame, object index) where the object is present: its grown box (y0, y1, x0, x1), its mask
    and its boundary map inside that box (the boundary lies in the box, see :func:`_span`)."""
    T, H, W = gt.shape
    out = {}
    for i, (obj, (rows, cols)) in enumerate(zip(ids, presence, strict=True)):
        for t in range(T):
            ys, xs = _span(rows[t], rows[t], H), _span(cols[t], cols[t], W)
            if ys is not None:
                m = gt[t, ys[0]:ys[1], xs[0]:xs[1]] == obj
                out[t, i] = (ys[0], ys[1], xs[0], xs[1], m, boundary_map(m))
    return out


def _placed(piece: tuple | None, ys: tuple[int, int], xs: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A ground-truth piece's mask and boundary inside the (larger) box ys x xs."""
    a = np.zeros((ys[1] - ys[0], xs[1] - xs[0]), bool)
    b = np.zeros_like(a)
    if piece is not None:
        y0, y1, x0, x1, m, bm = piece
        a[y0 - ys[0]:y1 - ys[0], x0 - xs[0]:x1 - xs[0]] = m
        b[y0 - ys[0]:y1 - ys[0], x0 - xs[0]:x1 - xs[0]] = bm
    return a, b


def _score(gt: np.ndarray, pred: np.ndarray, ids: np.ndarray, bound_th: float, want_j: bool, want_f: bool,
           gt_presence: list | None = None, gt_pieces: dict | None = None, t_offset: int = 0
           ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """gt, pred: (T, H, W) labels of one integer dtype (uint8 when every id is < 255). ``gt_pieces``
    (:func:`_gt_pieces` of the whole ground truth, whose frame ``t_offset`` is ``gt[0]``): the ground
    truth's masks and boundaries, made once."""
    T, H, W = gt.shape
    j = np.empty((T, len(ids)), dtype=np.float64) if want_j else None
    f = np.empty((T, len(ids)), dtype=np.float64) if want_f else None
    if T == 0:
        return j, f
    radius = bound_pixels((H, W), bound_th)
    gt_presence = gt_presence if gt_presence is not None else _presence(gt, ids)
    for i, (obj, (rt, ct), (rp, cp)) in enumerate(zip(ids, gt_presence, _presence(pred, ids), strict=True)):
        for t in range(T):
            ys, xs = _span(rt[t], rp[t], H), _span(ct[t], cp[t], W)
            if ys is None:                   # both masks empty: J 1; no boundary on either side: F 1
                if want_j:
                    j[t, i] = 1.0
                if want_f:
                    f[t, i] = 1.0
                continue
            if gt_pieces is not None:
                a, gt_b = _placed(gt_pieces.get((t + t_offset, i)), ys, xs)
            else:
                a = gt[t, ys[0]:ys[1], xs[0]:xs[1]] == obj
                gt_b = boundary_map(a) if want_f else None
            b = pred[t, ys[0]:ys[1], xs[0]:xs[1]] == obj
            if want_j:
                inter = np.count_nonzero(a & b)
                j[t, i] = inter / (np.count_nonzero(a) + np.count_nonzero(b) - inter)
            if want_f:
                f[t, i] = _f_value(gt_b, boundary_map(b), radius)
    return j, f


# -- the package's two functions, and both at once -----------------------------------------------
def batched_jaccard(y_true, y_pred, average_over_objects: bool = True, nb_objects: int | None = None
                    ) -> np.ndarray:
    """J per frame and object. y_true, y_pred: (T, H, W) integer labels (0 background, 1..K
    objects, 255 void). Returns (T, K) float64 in [0, 1], or (T,) averaged over objects."""
    j, _ = _score(*_prepare(y_true, y_pred, nb_objects), 0.008, True, False)
    return j.mean(axis=1) if average_over_objects else j


def batched_f_measure(y_true, y_pred, average_over_objects: bool = True, nb_objects: int | None = None,
                      bound_th: float = 0.008) -> np.ndarray:
    """F (boundary measure) per frame and object; same arguments and shapes as :func:`batched_jaccard`."""
    _, f = _score(*_prepare(y_true, y_pred, nb_objects), bound_th, False, True)
    return f.mean(axis=1) if average_over_objects else f


def jaccard_and_f(y_true, y_pred, nb_objects: int | None = None, bound_th: float = 0.008
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) J and (T, K) F in one pass over the labels (what the round loop needs)."""
    return _score(*_prepare(y_true, y_pred, nb_objects), bound_th, True, True)


def jf_per_frame(j: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(T, K) J and F -> (T,) J&F per frame averaged over objects, in [0, 1]."""
    return (0.5 * (np.asarray(j) + np.asarray(f))).mean(axis=1)


def object_weighted_jf(j: np.ndarray, f: np.ndarray) -> float:
    """(T, K) J and F -> the video's object-weighted J&F in [0, 1]: per object the mean over frames,
    then the mean over objects (as the benchmark's summary weights a sample)."""
    return float((0.5 * (np.asarray(j) + np.asarray(f))).mean(axis=0).mean())


class MaskScorer:
    """Scores many predictions against one ground truth (a round loop's sample): the ground truth
    is brought to uint8 and its objects located once.

    gt: (T, H, W) integer labels; num_objects: K (ids 1..K). ``score(pred)`` -> (T, K) J, (T, K) F."""

    def __init__(self, gt: np.ndarray, num_objects: int, bound_th: float = 0.008) -> None:
        gt = _as_int(gt)
        if gt.ndim != 3:
            raise ValueError("y_true array must have 3 dimensions.")
        self.ids = _object_ids(gt, int(num_objects))
        self.small = int(self.ids.max()) < 255
        self.gt = _to_u8(gt) if self.small else gt
        self.bound_th = bound_th
        self._presence = _presence(self.gt, self.ids)
        self._pieces = _gt_pieces(self.gt, self.ids, self._presence)

    def score(self, pred: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(T', K) J and F of ``pred`` (T', H, W) against frames ``start:start + T'`` of the ground truth."""
        pred = _as_int(pred)
        stop = start + len(pred)
        gt = self.gt[start:stop]
        _check(gt, pred)
        if self.small:
            pred = _to_u8(pred)
        presence = [(r[start:stop], c[start:stop]) for r, c in self._presence]
        return _score(gt, pred, self.ids, self.bound_th, True, True, presence, self._pieces, start)
