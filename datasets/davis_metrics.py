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
is one 2x2 morphological gradient; the disk dilation is the maximum of a few separable
rectangle dilations.
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


@lru_cache(maxsize=16)
def _disk_parts(radius: float) -> tuple[np.ndarray, ...]:
    """``skimage.morphology.disk(radius)`` as uint8, or, for an integer radius, as the rectangles
    whose union it is (rows |dy| <= a reach |dx| <= floor(sqrt(r^2 - a^2))): dilating by each and
    taking the maximum is dilating by the disk, and a rectangle dilation is separable, so fast."""
    from skimage.morphology import disk

    full = disk(radius).astype(np.uint8)
    if float(radius) != int(radius):
        return (full,)
    r = int(radius)
    widths = [int(np.floor(np.sqrt(r * r - dy * dy))) for dy in range(r + 1)]
    parts = tuple(np.ones((2 * dy + 1, 2 * widths[dy] + 1), np.uint8)
                  for dy in range(r + 1) if dy == r or widths[dy + 1] < widths[dy])
    union = np.zeros_like(full)
    for k in parts:
        h, w = k.shape
        union[r - h // 2:r + h // 2 + 1, r - w // 2:r + w // 2 + 1] = 1
    assert np.array_equal(union, full), "disk decomposition does not match skimage's disk"
    return parts


def _dilate(b: np.ndarray, parts: tuple[np.ndarray, ...]) -> np.ndarray:
    """(h, w) bool dilated by the disk whose parts these are (cv2.dilate: outside pixels ignored)."""
    u8 = b.view(np.uint8)
    out = cv2.dilate(u8, parts[0])
    for k in parts[1:]:
        cv2.max(out, cv2.dilate(u8, k), dst=out)
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
        lut = np.zeros(256, np.int32)
        lut[np.asarray(ids, np.int64)] = 1 << np.arange(len(ids), dtype=np.int32)
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


def _region_dilate(src: np.ndarray, box: tuple[int, int, int, int], r: int, parts: tuple[np.ndarray, ...]
                   ) -> np.ndarray:
    """``src`` (h, w) bool dilated by ``parts``, evaluated on ``box`` = (y0, y1, x0, x1) only: the
    dilation runs on the box grown by ``r``, beyond which no source pixel can reach the box."""
    h, w = src.shape
    y0, y1, x0, x1 = box
    sy0, sy1, sx0, sx1 = max(y0 - r, 0), min(y1 + r, h), max(x0 - r, 0), min(x1 + r, w)
    dil = _dilate(np.ascontiguousarray(src[sy0:sy1, sx0:sx1]), parts)
    return dil[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0]


def _bbox(m: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _matched(src: np.ndarray, dst: np.ndarray, parts: tuple[np.ndarray, ...], r: int) -> int:
    """How many pixels of the boundary ``dst`` lie within the disk of a pixel of ``src`` (both (h, w)
    bool), i.e. on ``dilate(src, disk)``. Pixels on ``src`` itself match. For the others, the disk's
    largest inner rectangle tells those that surely match and its bounding square those that surely
    do not; only the pixels in between are tested against the whole disk, within their box."""
    rest = dst & ~src
    count = int(np.count_nonzero(dst)) - int(np.count_nonzero(rest))
    box = _bbox(rest)
    if box is None:
        return count
    y0, y1, x0, x1 = box
    if len(parts) == 1:                      # a disk we did not decompose
        return count + int(np.count_nonzero(rest[y0:y1, x0:x1] & _region_dilate(src, box, r, parts)))
    inner = max(parts, key=lambda k: k.size)
    square = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    rest = rest[y0:y1, x0:x1]
    sure = rest & _region_dilate(src, box, r, (inner,))
    maybe = rest & ~sure & _region_dilate(src, box, r, (square,))
    count += int(np.count_nonzero(sure))
    sub = _bbox(maybe)
    if sub is not None:
        a0, a1, b0, b1 = sub
        exact = _region_dilate(src, (y0 + a0, y0 + a1, x0 + b0, x0 + b1), r, parts)
        count += int(np.count_nonzero(maybe[a0:a1, b0:b1] & exact))
    return count


def _f_value(gt_b: np.ndarray, pr_b: np.ndarray, parts: tuple[np.ndarray, ...], r: int) -> float:
    n_fg, n_gt = int(np.count_nonzero(pr_b)), int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = _matched(gt_b, pr_b, parts, r) / float(n_fg)
        recall = _matched(pr_b, gt_b, parts, r) / float(n_gt)
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


def _score(gt: np.ndarray, pred: np.ndarray, ids: np.ndarray, bound_th: float, want_j: bool, want_f: bool,
           gt_presence: list | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """gt, pred: (T, H, W) labels of one integer dtype (uint8 when every id is < 255)."""
    T, H, W = gt.shape
    j = np.empty((T, len(ids)), dtype=np.float64) if want_j else None
    f = np.empty((T, len(ids)), dtype=np.float64) if want_f else None
    if T == 0:
        return j, f
    radius = bound_pixels((H, W), bound_th)
    parts = _disk_parts(radius) if want_f else None
    reach = int(np.ceil(radius))            # no disk pixel lies farther from its centre
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
            a = gt[t, ys[0]:ys[1], xs[0]:xs[1]] == obj
            b = pred[t, ys[0]:ys[1], xs[0]:xs[1]] == obj
            if want_j:
                j[t, i] = np.count_nonzero(a & b) / np.count_nonzero(a | b)
            if want_f:
                f[t, i] = _f_value(boundary_map(a), boundary_map(b), parts, reach)
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

    def score(self, pred: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(T', K) J and F of ``pred`` (T', H, W) against frames ``start:start + T'`` of the ground truth."""
        pred = _as_int(pred)
        stop = start + len(pred)
        gt = self.gt[start:stop]
        _check(gt, pred)
        if self.small:
            pred = _to_u8(pred)
        presence = [(r[start:stop], c[start:stop]) for r, c in self._presence]
        return _score(gt, pred, self.ids, self.bound_th, True, True, presence)
