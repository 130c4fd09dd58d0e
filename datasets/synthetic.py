"""A synthetic DAVIS-layout benchmark for interactive VOS and frame recommendation.

    python -m datasets.synthetic --root data/synthetic --train 24 --val 12 --frames 40 --seed 0

writes, under ``root``, exactly what a DAVIS root holds (``JPEGImages/480p``, ``Annotations/480p``
palette PNGs with the DAVIS palette, ``Scribbles/<seq>/001..003.json``, ``ImageSets/2017/{train,val}.txt``)
plus ``metadata.json`` for registration (:mod:`datasets.layout`). Sequences are named
``syn-train-000``, ``syn-val-000``, ...

What a sequence shows. A textured background (multi-scale noise plus static clutter, some of it in
the objects' colours) filmed by a slowly panning, slightly zooming and rolling camera; 1-3 elongated,
textured objects (bars, ellipses, irregular polygons, thick curved strokes: never discs, because
the davisinteractive robot cannot scribble a blob) covering about 1-9 % of the frame each, that
move, rotate, scale, stretch and bend, under a global lighting that drifts and a shadow band that
sweeps the scene.

Motion is DAVIS-like (figures in pixels at 854 px width, :data:`REF_WIDTH`): a slowly turning drift
of 1-8 px/frame that bounces inside the central part of the frame, so that the centroid moves a
median ~6 px and a 90th percentile ~23 px per frame (:func:`sequence_statistics`,
``benchmarks/bench_synthetic.py`` print them). What makes some frames hard, so that the choice of
the next frame to annotate matters, happens at realistic rates:

- occlusion: about 3 in 4 later objects have their path shifted (velocities unchanged) to pass over
  an earlier object at some frame (one hides part of the other);
- exits: about 1 in 3 objects leaves through its nearest border and comes back a few frames later
  (a quarter of those enter after the first frame; a third of the exits are only partial), so a
  propagation-based VOS loses them and must re-detect them;
- fast motion bursts: most objects have 0-2 bursts of 18-40 px/frame lasting a frame or two, with a
  turn, extra rotation and motion blur of the image (not of the ground truth);
- appearance change: per-object colour drift plus an abrupt change of colour on about a third of
  the objects, global lighting flashes and the shadow band;
- distractors: background clutter in the objects' colours.

These events happen at different times for different objects, so a VOS backend's errors
concentrate on a few frames, and annotating one of them helps far more than annotating a frame
that the backend already segments well.

Initial scribbles are made like DAVIS' human ones are replayed by the benchmark: the real
davisinteractive robot (``min_nb_nodes=4``) draws on one frame against an empty prediction, a
different frame for each of the 3 files, chosen among frames where every object is well visible;
a frame where the robot misses an object is replaced by another. The robot's wall-clock
``start_time``/``end_time`` are replaced by the stroke's index (``start_time = k``, ``end_time = k + 1``).

Deterministic: the same arguments give byte-identical files. Each sequence has its own random
generator seeded from (seed, split, index), so a sequence does not depend on how many others are
generated.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from datasets.layout import METADATA_FILE, RESOLUTION, DatasetError, DatasetSpec, read_metadata, write_metadata

log = logging.getLogger(__name__)

NUM_SCRIBBLES = 3
JPEG_QUALITY = 90
MIN_ON_OBJECT = 0.9  # fraction of an initial stroke's points that must lie on its object
_SPLIT_CODE = {"train": 0, "val": 1}
_SHAPES = ("bar", "ellipse", "polygon", "curve")
_MAX_ATTEMPTS = 8


# -- DAVIS palette and file writers -----------------------------------------------------------
def davis_palette() -> list[int]:
    """The DAVIS (PASCAL VOC) palette: 256 RGB triples, flattened (768 ints)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = davis_palette()


def palette_png_bytes(ids: np.ndarray) -> bytes:
    """PNG bytes of ``ids`` ((H, W) uint8 object ids) as a palette image with the DAVIS palette."""
    im = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8))
    im.putpalette(_PALETTE)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of ``rgb`` ((H, W, 3) uint8) with fixed settings and no metadata."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# -- random smooth signals ----------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float, channels: int = 1) -> np.ndarray:
    """(H, W, C) float32 in about [0, 1]: random values on a grid of ``cell`` pixels, bicubic-upsampled."""
    H, W = shape
    gh, gw = max(2, int(np.ceil(H / cell)) + 1), max(2, int(np.ceil(W / cell)) + 1)
    small = rng.random((gh, gw, channels)).astype(np.float32)
    big = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    return big.reshape(H, W, channels)


def _smooth_1d(rng: np.random.Generator, T: int, n_terms: int = 3, period: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    """(T,) sum of random sinusoids, about in [-1, 1], periods in units of the sequence length."""
    t = np.arange(T) / max(T - 1, 1)
    out = np.zeros(T)
    for _ in range(n_terms):
        p = rng.uniform(*period)
        out += np.sin(2 * np.pi * t / p + rng.uniform(0, 2 * np.pi))
    return out / n_terms


def _random_colour(rng: np.random.Generator, sat=(0.45, 1.0), val=(0.45, 1.0)) -> np.ndarray:
    """(3,) float32 RGB in [0, 255] from a random hue."""
    hsv = np.uint8([[[rng.integers(0, 180), int(255 * rng.uniform(*sat)), int(255 * rng.uniform(*val))]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


# -- scene description --------------------------------------------------------------------------
@dataclass
class _Object:
    outline: np.ndarray   # (N, 2) local points, major axis along x, centred, pixels at scale 1
    half_len: float       # half of the major axis, pixels
    texture: np.ndarray   # (S, S, 3) uint8, centred on the object's origin
    pos: np.ndarray       # (T, 2) centre in frame pixels (x, y)
    angle: np.ndarray     # (T,) radians
    scale: np.ndarray     # (T,)
    stretch: np.ndarray   # (T,) extra scale along the major axis
    bend: np.ndarray      # (T,) bending amplitude, fraction of half_len
    gain: np.ndarray      # (T, 3) colour multipliers (drift and abrupt changes)
    speed: np.ndarray     # (T, 2) screen velocity, pixels per frame (for motion blur)


@dataclass
class _Scene:
    background: np.ndarray  # (BH, BW, 3) uint8, larger than the frame
    margin: tuple[int, int]  # (mx, my)
    cam_shift: np.ndarray   # (T, 2) pixels
    cam_zoom: np.ndarray    # (T,)
    cam_roll: np.ndarray    # (T,) degrees
    light: np.ndarray       # (T,) global gain
    band_axis: int          # 0: band varies along x, 1: along y
    band_centre: np.ndarray  # (T,) pixels
    band_width: float
    band_depth: float
    objects: list[_Object]  # back to front


def _outline(rng: np.random.Generator, kind: str, L: float) -> np.ndarray:
    """(N, 2) float64 outline of an elongated shape with half-length ``L`` along x."""
    if kind == "bar":
        r = L * rng.uniform(1 / 5, 1 / 2.8)  # half width; full aspect 2.8..5
        xs = np.linspace(-(L - r), L - r, 16)
        arc = np.linspace(-np.pi / 2, np.pi / 2, 12)
        top = np.stack([xs, np.full_like(xs, -r)], 1)
        right = np.stack([(L - r) + r * np.cos(arc), r * np.sin(arc)], 1)
        bottom = np.stack([xs[::-1], np.full_like(xs, r)], 1)
        left = np.stack([-(L - r) - r * np.cos(arc), -r * np.sin(arc)], 1)
        return np.concatenate([top, right, bottom, left])
    if kind == "ellipse":
        b = L * rng.uniform(0.25, 0.42)
        a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([L * np.cos(a), b * np.sin(a)], 1)
    if kind == "polygon":
        n = int(rng.integers(5, 9))
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.75, 1.0, n)
        b = L * rng.uniform(0.28, 0.48)
        pts = np.stack([L * rad * np.cos(a), b * rad * np.sin(a)], 1)
        # keep the full extent along x so the shape stays elongated
        return pts * np.array([L / max(np.abs(pts[:, 0]).max(), 1e-6), 1.0])
    # thick curved stroke: an arc or an S around the x axis
    half_t = L * rng.uniform(0.15, 0.25)
    x = np.linspace(-L, L, 24)
    u = x / L
    y = L * (rng.uniform(-0.35, 0.35) * u ** 2 + rng.uniform(-0.2, 0.2) * np.sin(np.pi * u))
    dy = np.gradient(y, x)
    nrm = np.stack([-dy, np.ones_like(dy)], 1) / np.sqrt(1 + dy ** 2)[:, None]
    centre = np.stack([x, y], 1)
    return np.concatenate([centre + half_t * nrm, (centre - half_t * nrm)[::-1]])


def _texture(rng: np.random.Generator, size: int, base: np.ndarray) -> np.ndarray:
    """(size, size, 3) uint8: stripes, spots and noise around colour ``base``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    th = rng.uniform(0, np.pi)
    freq = rng.uniform(3, 9) * 2 * np.pi / size
    stripes = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(th) + yy * np.sin(th)))
    noise = _smooth_noise(rng, (size, size), max(size / 8, 2), 1)[..., 0]
    pattern = 0.55 * stripes + 0.45 * noise
    second = _random_colour(rng)
    mix = rng.uniform(0.1, 0.35)
    col = base * (1 - mix) + second * mix
    tex = col[None, None, :] * (0.55 + 0.6 * pattern[..., None])
    return np.clip(tex, 0, 255).astype(np.uint8)


REF_WIDTH = 854  # motion figures are given in pixels at DAVIS' 480p width


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect ``x`` into [lo, hi] (a triangle wave): a path bounces off the box, keeping its speed."""
    span = np.maximum(np.asarray(hi) - np.asarray(lo), 1e-6)
    r = np.mod(x - lo, 2 * span)
    return lo + np.where(r > span, 2 * span - r, r)


def _bursts(rng: np.random.Generator, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(T,) burst speed in px/frame at REF_WIDTH and (T,) burst heading offset: 0-2 short bursts."""
    t = np.arange(T)
    speed = np.zeros(T)
    heading = np.zeros(T)
    n = int(rng.choice([0, 1, 1, 2]))
    for _ in range(n):
        c = rng.uniform(1, T - 2)
        bump = np.exp(-0.5 * ((t - c) / rng.uniform(0.7, 1.4)) ** 2)
        speed += rng.uniform(18, 40) * bump
        heading += rng.uniform(-1.2, 1.2) * (bump > 0.05)
    return speed, heading


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _exit_offset(rng: np.random.Generator, pos: np.ndarray, extent: float, W: int, H: int,
                 enter_late: bool) -> np.ndarray:
    """(T, 2) offset that takes an object out through its nearest border and back (or, with
    ``enter_late``, that starts outside and brings it in). About 1 in 3 exits is only partial."""
    T = len(pos)
    t = np.arange(T)
    ramp = rng.uniform(5, 9)
    if enter_late:
        te = -ramp
        stay = rng.uniform(1, max(2.0, 0.2 * T))
    else:
        te = rng.uniform(0.1 * T, max(0.1 * T + 1, 0.75 * T - 2 * ramp))
        stay = rng.uniform(1, 6)
    profile = _smoothstep((t - te) / ramp) * (1 - _smoothstep((t - te - ramp - stay) / ramp))
    k = int(np.clip(round(te + ramp), 0, T - 1))
    x, y = pos[k]
    side = int(np.argmin([x, W - x, y, H - y]))
    depth = [x, W - x, y, H - y][side] + extent * (rng.uniform(1.1, 1.3) if rng.random() < 0.65 else rng.uniform(0.3, 0.7))
    direction = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)][side], np.float64)
    return profile[:, None] * depth * direction[None]


def _draw_scene(rng: np.random.Generator, T: int, H: int, W: int, n_obj: int) -> _Scene:
    S = min(H, W)
    u = W / REF_WIDTH   # pixels per DAVIS pixel
    # camera: a slow pan (a few px/frame), zoom and roll
    mx, my = int(0.12 * W) + 2, int(0.12 * H) + 2
    cam_shift = np.stack([mx * 0.35 * _smooth_1d(rng, T), my * 0.35 * _smooth_1d(rng, T)], 1)
    cam_zoom = 1.0 + 0.04 * (1 + _smooth_1d(rng, T, 2))
    cam_roll = 1.5 * _smooth_1d(rng, T, 2)
    # lighting: slow drift, 0-2 flashes, a sweeping shadow band
    light = 1.0 + 0.12 * _smooth_1d(rng, T, 2)
    t = np.arange(T)
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        c = int(rng.integers(0, T))
        light += rng.choice([-1, 1]) * rng.uniform(0.25, 0.45) * np.where(t >= c, np.exp(-(t - c) / 1.5), 0)
    band_axis = int(rng.integers(0, 2))
    extent = W if band_axis == 0 else H
    band_centre = np.linspace(*(rng.permutation([-0.2 * extent, 1.2 * extent])), T)
    band_width = rng.uniform(0.08, 0.2) * extent
    band_depth = rng.uniform(0.25, 0.5)

    # objects: DAVIS-like motion. A slowly turning drift of 1-8 px/frame (at 854 px width) that
    # bounces inside the central part of the frame, 0-2 short bursts of 18-40 px/frame, and
    # exits/re-entries through the nearest border for about a third of the objects.
    objects: list[_Object] = []
    raw: list[np.ndarray] = []
    colours = [_random_colour(rng) for _ in range(n_obj)]
    lo_box, hi_box = np.array([0.15 * W, 0.2 * H]), np.array([0.85 * W, 0.8 * H])
    for k in range(n_obj):
        kind = _SHAPES[int(rng.integers(0, len(_SHAPES)))]
        L = rng.uniform(0.26, 0.48) * S
        outline = _outline(rng, kind, L)
        tex = _texture(rng, int(np.ceil(2.6 * L)) | 1, colours[k])
        drift = rng.uniform(1.0, 8.0) * (1 + 0.5 * _smooth_1d(rng, T, 2)).clip(0.2)
        burst, burst_turn = _bursts(rng, T)
        heading = rng.uniform(0, 2 * np.pi) + 1.2 * _smooth_1d(rng, T, 2) + burst_turn
        vel = (drift + burst)[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1) * u
        path = np.cumsum(vel, 0) - vel[0] + rng.uniform(lo_box, hi_box)
        raw.append(path)
        scale0 = rng.uniform(0.85, 1.1)
        omega = rng.uniform(-0.025, 0.025)
        angle = rng.uniform(0, np.pi) + np.cumsum(omega * (1 + burst / 10)) + 0.2 * _smooth_1d(rng, T, 2)
        scale = scale0 * (1 + 0.1 * _smooth_1d(rng, T, 2)) * np.linspace(1, rng.uniform(0.85, 1.2), T)
        stretch = 1 + 0.08 * _smooth_1d(rng, T, 2)
        bend = 0.15 * _smooth_1d(rng, T, 2, (0.3, 1.2))
        g0, g1 = rng.uniform(0.8, 1.2, 3), rng.uniform(0.8, 1.2, 3)
        gain = g0[None] + (g1 - g0)[None] * np.linspace(0, 1, T)[:, None]
        if rng.random() < 0.35:  # abrupt appearance change
            c = int(rng.integers(1, max(T, 2)))
            gain[c:] *= rng.uniform(0.6, 1.4, 3)[None]
        objects.append(_Object(outline, L, tex, _fold(path, lo_box, hi_box), angle, scale, stretch, bend, gain,
                               np.zeros((T, 2))))
    # occlusions: shift a later object's whole path (its velocities unchanged) so that it passes
    # over an earlier one at some frame
    for k in range(1, n_obj):
        if rng.random() < 0.75:
            a = objects[int(rng.integers(0, k))]
            tc = int(rng.integers(int(0.1 * T), max(int(0.9 * T), int(0.1 * T) + 1)))
            b = objects[k]
            target = a.pos[tc] + rng.uniform(-0.4, 0.4, 2) * b.half_len
            b.pos = _fold(raw[k] - raw[k][tc] + target, lo_box, hi_box)
    for o in objects:
        if rng.random() < 0.35:
            late = rng.random() < 0.25
            o.pos = o.pos + _exit_offset(rng, o.pos, o.half_len * o.scale.max(), W, H, late)
        o.speed = np.gradient(o.pos, axis=0) if T > 1 else np.zeros((T, 2))
    order = rng.permutation(n_obj)

    # background: multi-scale coloured noise, then clutter (some in the objects' colours)
    BH, BW = H + 2 * my, W + 2 * mx
    c1, c2 = _random_colour(rng, (0.1, 0.7), (0.25, 0.9)), _random_colour(rng, (0.1, 0.7), (0.25, 0.9))
    n1 = _smooth_noise(rng, (BH, BW), S / 2.5, 1)
    n2 = _smooth_noise(rng, (BH, BW), S / 10, 3)
    n3 = _smooth_noise(rng, (BH, BW), max(S / 40, 2), 1)
    mix = np.clip(0.6 * n1 + 0.4 * n3, 0, 1)
    bg = c1 * (1 - mix) + c2 * mix + 60 * (n2 - 0.5)
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 11))):
        col = colours[int(rng.integers(0, n_obj))] if rng.random() < 0.35 else _random_colour(rng)
        col = tuple(float(v) * rng.uniform(0.7, 1.1) for v in col)
        cx, cy = rng.uniform(0, BW), rng.uniform(0, BH)
        if rng.random() < 0.5:
            a = rng.uniform(0, np.pi)
            ln = rng.uniform(0.1, 0.4) * S
            p0 = (int(cx - ln * np.cos(a)), int(cy - ln * np.sin(a)))
            p1 = (int(cx + ln * np.cos(a)), int(cy + ln * np.sin(a)))
            cv2.line(bg, p0, p1, col, max(1, int(rng.uniform(0.01, 0.05) * S)), cv2.LINE_AA)
        else:
            axes = (max(1, int(rng.uniform(0.03, 0.15) * S)), max(1, int(rng.uniform(0.02, 0.06) * S)))
            cv2.ellipse(bg, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA)
    bg = cv2.GaussianBlur(bg, (3, 3), 0)
    return _Scene(bg, (mx, my), cam_shift, cam_zoom, cam_roll, light, band_axis, band_centre, band_width,
                  band_depth, [objects[i] for i in order])


# -- rendering ------------------------------------------------------------------------------------
def _object_points(o: _Object, t: int) -> np.ndarray:
    """(N, 2) float64 outline of object ``o`` in frame pixels at frame ``t``."""
    p = o.outline.copy()
    u = p[:, 0] / o.half_len
    p[:, 1] += o.bend[t] * o.half_len * (u ** 2 - 1 / 3)
    p[:, 0] *= o.stretch[t]
    c, s = np.cos(o.angle[t]), np.sin(o.angle[t])
    R = np.array([[c, -s], [s, c]]) * o.scale[t]
    return p @ R.T + o.pos[t]


def _render_frame(scene: _Scene, t: int, H: int, W: int, noise_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: ((H, W, 3) uint8 RGB, (H, W) uint8 object ids, 1..K in the order objects were drawn)."""
    mx, my = scene.margin
    M = cv2.getRotationMatrix2D((W / 2, H / 2), float(scene.cam_roll[t]), 1.0 / float(scene.cam_zoom[t]))
    M[:, 2] += (mx + scene.cam_shift[t, 0], my + scene.cam_shift[t, 1])
    img = cv2.warpAffine(scene.background, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    ids = np.zeros((H, W), np.uint8)
    for o_id, o in enumerate(scene.objects, 1):
        pts = _object_points(o, t)
        v = o.speed[t]
        blur = int(min(np.hypot(*v) * 0.25, 0.04 * max(H, W)))
        pad = blur + 2
        x0, y0 = np.floor(pts.min(0)).astype(int) - pad
        x1, y1 = np.ceil(pts.max(0)).astype(int) + pad
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        if x1 <= x0 or y1 <= y0:
            continue
        bw, bh = x1 - x0, y1 - y0
        alpha = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(alpha, [np.round((pts - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        if not alpha.any():
            continue
        # texture follows the object's rigid motion (rotation, scale, translation)
        S = o.texture.shape[0]
        c, s = np.cos(o.angle[t]), np.sin(o.angle[t])
        A = np.array([[c, -s], [s, c]]) * o.scale[t]
        off = o.pos[t] - (x0, y0) - A @ np.array([S / 2, S / 2])
        tex = cv2.warpAffine(o.texture, np.hstack([A, off[:, None]]), (bw, bh), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        a = alpha.astype(np.float32) / 255.0
        col = tex.astype(np.float32) * o.gain[t].astype(np.float32)[None, None] * a[..., None]
        if blur >= 3:  # motion blur of the image along the velocity (not of the ground truth)
            k = np.zeros((2 * blur + 1, 2 * blur + 1), np.float32)
            d = v / max(np.hypot(*v), 1e-6)
            cv2.line(k, (int(round(blur - d[0] * blur)), int(round(blur - d[1] * blur))),
                     (int(round(blur + d[0] * blur)), int(round(blur + d[1] * blur))), 1.0, 1)
            k /= k.sum()
            col = cv2.filter2D(col, -1, k, borderType=cv2.BORDER_CONSTANT)
            a = cv2.filter2D(a, -1, k, borderType=cv2.BORDER_CONSTANT)
        region = img[y0:y1, x0:x1]
        region *= (1 - a)[..., None]
        region += col
        ids[y0:y1, x0:x1][alpha >= 128] = o_id  # drawn back to front: later objects occlude
    # lighting: global gain and a sweeping shadow band
    coord = np.arange(W if scene.band_axis == 0 else H, dtype=np.float32)
    band = 1 - scene.band_depth * np.exp(-0.5 * ((coord - scene.band_centre[t]) / scene.band_width) ** 2)
    band = band[None, :, None] if scene.band_axis == 0 else band[:, None, None]
    img *= band * np.float32(scene.light[t])
    img += noise_rng.normal(0, 3.0, (H, W, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), ids


# -- scribbles ------------------------------------------------------------------------------------
def _robot_scribble(robot, seq: str, gt: np.ndarray, n_obj: int) -> list[dict] | None:
    """Strokes the robot draws on ``gt`` ((H, W) uint8 ids) against an empty prediction, with the
    time stamps replaced by the stroke index; None if some object gets no stroke or a stroke strays
    off its object."""
    out = robot.interact(seq, np.zeros((1,) + gt.shape, np.int64), gt[None].astype(np.int64),
                         nb_objects=n_obj, frame=0)
    strokes = out["scribbles"][0]
    if {s["object_id"] for s in strokes} != set(range(1, n_obj + 1)):
        return None
    H, W = gt.shape
    for s in strokes:
        # the robot's Bezier fit can cut across a strongly bent skeleton; a human stays on the object
        xy = np.asarray(s["path"]) * (W, H)
        x = np.clip(xy[:, 0].astype(int), 0, W - 1)
        y = np.clip(xy[:, 1].astype(int), 0, H - 1)
        if np.mean(gt[y, x] == s["object_id"]) < MIN_ON_OBJECT:
            return None
    for k, s in enumerate(strokes):
        s["start_time"], s["end_time"] = float(k), float(k + 1)
    return strokes


def _choose_scribbles(rng: np.random.Generator, robot, seq: str, ids: np.ndarray, n_obj: int,
                      min_area: int) -> list[tuple[int, list[dict]]] | None:
    """[(frame, strokes)] for NUM_SCRIBBLES distinct frames where every object is well visible and
    gets a robot stroke; None if there are not enough such frames."""
    T = len(ids)
    areas = np.stack([np.bincount(f.ravel(), minlength=256)[1:n_obj + 1] for f in ids])  # (T, K)
    if (areas.max(0) < min_area).any():
        return None
    rel = areas / areas.max(0, keepdims=True)
    for frac in (0.5, 0.3, 0.0):
        ok = np.flatnonzero(((rel >= frac) & (areas >= min_area)).all(1))
        if len(ok) >= NUM_SCRIBBLES:
            break
    else:
        return None
    chosen: list[tuple[int, list[dict]]] = []
    todo = [int(f) for f in rng.permutation(ok)]
    gap = max(1, T // 6)  # spread the files over the sequence when the candidates allow it
    while todo and len(chosen) < NUM_SCRIBBLES:
        far = [f for f in todo if all(abs(f - g) >= gap for g, _ in chosen)]
        f = (far or todo)[0]
        todo.remove(f)
        strokes = _robot_scribble(robot, seq, ids[f], n_obj)
        if strokes is not None:
            chosen.append((f, strokes))
    if len(chosen) == NUM_SCRIBBLES:
        return chosen
    log.debug("%s: robot found strokes for every object on only %d frames of %d", seq, len(chosen), T)
    return None


# -- generation -----------------------------------------------------------------------------------
def _sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], index]))


def _render(seed: int, split: str, index: int, frames: int, height: int, width: int,
            objects: tuple[int, int], robot) -> tuple[np.ndarray, np.ndarray, list, _Scene]:
    from datasets.davis_compat import robot_for

    robot = robot or robot_for(min_nb_nodes=4)
    seq = sequence_name(split, index)
    rng = _sequence_rng(seed, split, index)
    lo, hi = objects
    min_area = max(50, int(0.002 * height * width))
    for attempt in range(_MAX_ATTEMPTS):
        n_obj = int(rng.integers(lo, hi + 1))
        scene = _draw_scene(rng, frames, height, width, n_obj)
        noise_rng = np.random.default_rng(rng.integers(0, 2 ** 63))
        rendered = [_render_frame(scene, t, height, width, noise_rng) for t in range(frames)]
        ids = np.stack([r[1] for r in rendered])
        chosen = _choose_scribbles(rng, robot, seq, ids, n_obj, min_area)
        if chosen is not None:
            images = np.stack([r[0] for r in rendered])
            scribbles = []
            for f, strokes in chosen:
                per_frame: list[list[dict]] = [[] for _ in range(frames)]
                per_frame[f] = strokes
                scribbles.append(per_frame)
            return images, ids, scribbles, scene
        log.debug("%s: attempt %d rejected (objects not visible enough for %d scribbles)", seq, attempt, NUM_SCRIBBLES)
    raise RuntimeError(f"{seq}: no valid scene in {_MAX_ATTEMPTS} attempts; use more frames or a larger size")


def render_sequence(seed: int, split: str, index: int, frames: int, height: int, width: int,
                    objects: tuple[int, int] = (1, 3), robot=None) -> tuple[np.ndarray, np.ndarray, list]:
    """One synthetic sequence in memory.

    Returns (images (T, H, W, 3) uint8 RGB, ids (T, H, W) uint8 object ids 0..K,
    scribbles: NUM_SCRIBBLES lists of T per-frame stroke lists in davisinteractive's format).
    """
    return _render(seed, split, index, frames, height, width, objects, robot)[:3]


def sequence_statistics(seed: int, split: str, index: int, frames: int, height: int, width: int,
                        objects: tuple[int, int] = (1, 3), robot=None) -> dict[str, np.ndarray]:
    """Per-object, per-frame motion and visibility figures of one generated sequence.

    Returns arrays (all measured on the ground truth, the scene description only telling how much
    of an object lies outside the frame or behind another):
    ``displacement`` (n,) centroid displacement of the visible mask between consecutive frames where
    the object is visible in both, in pixels at REF_WIDTH; ``out`` (K, T) fraction of the object's
    own area outside the frame; ``occluded`` (K, T) fraction of its in-frame area hidden by another
    object; ``area`` (K, T) visible area as a fraction of the frame.
    """
    _, ids, _, scene = _render(seed, split, index, frames, height, width, objects, robot)
    K, T = len(scene.objects), frames
    out = np.zeros((K, T))
    occ = np.zeros((K, T))
    area = np.zeros((K, T))
    disp: list[float] = []
    canvas = np.zeros((height, width), np.uint8)
    for k, o in enumerate(scene.objects):
        prev = None
        for t in range(T):
            pts = _object_points(o, t)
            total = max(cv2.contourArea(pts.astype(np.float32)), 1.0)
            canvas[:] = 0
            cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
            inside = float(canvas.sum())
            vis = ids[t] == k + 1
            n = float(vis.sum())
            out[k, t] = float(np.clip(1 - inside / total, 0, 1))
            occ[k, t] = float(np.clip(1 - n / inside, 0, 1)) if inside > 0 else 0.0
            area[k, t] = n / (height * width)
            if n > 0:
                ys, xs = np.nonzero(vis)
                c = np.array([xs.mean(), ys.mean()])
                if prev is not None:
                    disp.append(float(np.hypot(*(c - prev)) * REF_WIDTH / width))
                prev = c
            else:
                prev = None
    return {"displacement": np.asarray(disp), "out": out, "occluded": occ, "area": area}


def summarize_statistics(stats: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Pool :func:`sequence_statistics` of several sequences into the figures the benchmark prints:
    displacement median / 90th percentile / max (px at REF_WIDTH), fraction of object-frames partly
    (> 2 %) or fully (> 98 %) out of the frame, partly (> 10 %) or fully (> 90 %) occluded, and the
    visible area (median and 10th/90th percentiles, fraction of the frame, over frames where visible)."""
    d = np.concatenate([s["displacement"] for s in stats])
    out = np.concatenate([s["out"].ravel() for s in stats])
    occ = np.concatenate([s["occluded"].ravel() for s in stats])
    area = np.concatenate([s["area"].ravel() for s in stats])
    vis = area[area > 0]
    return {"disp_median": float(np.median(d)), "disp_p90": float(np.percentile(d, 90)), "disp_max": float(d.max()),
            "partly_out": float(np.mean((out > 0.02) & (out <= 0.98))), "fully_out": float(np.mean(out > 0.98)),
            "occluded": float(np.mean((occ > 0.1) & (out <= 0.98))), "fully_occluded": float(np.mean(occ > 0.9)),
            "area_median": float(np.median(vis)), "area_p10": float(np.percentile(vis, 10)),
            "area_p90": float(np.percentile(vis, 90))}


def sequence_name(split: str, index: int) -> str:
    return f"syn-{split}-{index:03d}"


def _write_sequence(root: Path, seq: str, images: np.ndarray, ids: np.ndarray, scribbles: list) -> None:
    jdir = root / "JPEGImages" / RESOLUTION / seq
    adir = root / "Annotations" / RESOLUTION / seq
    sdir = root / "Scribbles" / seq
    for d in (jdir, adir, sdir):  # no stale files from an earlier, longer generation
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    for t in range(len(images)):
        (jdir / f"{t:05d}.jpg").write_bytes(jpeg_bytes(images[t]))
        (adir / f"{t:05d}.png").write_bytes(palette_png_bytes(ids[t]))
    for k, per_frame in enumerate(scribbles, 1):
        (sdir / f"{k:03d}.json").write_text(json.dumps({"scribbles": per_frame, "sequence": seq}))


def write_dataset(root: str | Path, render, name_of, *, label: str, max_objects: int, train: int, val: int,
                  frames: int, height: int, width: int, seed: int, objects: tuple[int, int],
                  progress: bool) -> DatasetSpec:
    """Write a generated DAVIS-layout dataset under ``root`` (shared by this module and
    :mod:`datasets.composite`): ``render(seed, split, index, frames, height, width, objects, robot)``
    gives one sequence's (T,H,W,3) uint8 images, (T,H,W) uint8 ids and initial scribbles;
    ``name_of(split, index)`` names it. Existing files of the same sequences are replaced;
    metadata.json is written last, so an interrupted run leaves no metadata."""
    root = Path(root)
    lo, hi = objects
    if frames < NUM_SCRIBBLES:
        raise ValueError(f"frames must be >= {NUM_SCRIBBLES} (one distinct frame per scribble file)")
    if not 1 <= lo <= hi <= max_objects:
        raise ValueError(f"objects must satisfy 1 <= min <= max <= {max_objects}, got {objects}")
    if height < 32 or width < 32:
        raise ValueError("height and width must be at least 32 pixels")
    if train < 0 or val < 0 or train + val == 0:
        raise ValueError("ask for at least one sequence")
    from datasets.davis_compat import robot_for

    root.mkdir(parents=True, exist_ok=True)
    (root / METADATA_FILE).unlink(missing_ok=True)
    robot = robot_for(min_nb_nodes=4)
    jobs = [("train", i) for i in range(train)] + [("val", i) for i in range(val)]
    meta: dict[str, dict] = {}
    for split, i in tqdm(jobs, desc=f"{label} -> {root}", unit="seq", disable=not progress):
        seq = name_of(split, i)
        images, ids, scribbles = render(seed, split, i, frames, height, width, (lo, hi), robot)
        _write_sequence(root, seq, images, ids, scribbles)
        meta[seq] = {"name": seq, "num_frames": frames, "num_objects": int(ids.max()),
                     "num_scribbles": len(scribbles), "image_size": [width, height], "set": split}
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        names = sorted(s for s, m in meta.items() if m["set"] == split)
        (sets / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    write_metadata(root, meta)
    return DatasetSpec(root.name, root, read_metadata(root))


def generate(root: str | Path, train: int = 24, val: int = 12, frames: int = 40, height: int = 480,
             width: int = 854, seed: int = 0, objects: tuple[int, int] = (1, 3),
             progress: bool = True) -> DatasetSpec:
    """Write a synthetic DAVIS-layout dataset under ``root`` and return its spec.

    ``train``/``val``: number of sequences per set; ``frames``: frames per sequence (>= 3);
    ``objects``: (min, max) objects per sequence, 1 <= min <= max <= 254. Existing files of the same
    sequences are replaced; metadata.json is written last, so an interrupted run leaves no metadata.
    """
    return write_dataset(root, render_sequence, sequence_name, label="synthetic", max_objects=254, train=train,
                         val=val, frames=frames, height=height, width=width, seed=seed, objects=objects,
                         progress=progress)


def generator_cli(prog: str, generate_fn, default_root: str, description: str, argv: list[str] | None) -> int:
    """The command line of a dataset generator (``generate_fn`` has :func:`generate`'s signature)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--root", default=default_root, help=f"output DAVIS-layout folder (default {default_root})")
    p.add_argument("--train", type=int, default=24, help="train sequences (default 24)")
    p.add_argument("--val", type=int, default=12, help="val sequences (default 12)")
    p.add_argument("--frames", type=int, default=40, help="frames per sequence (default 40)")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-objects", type=int, default=1)
    p.add_argument("--max-objects", type=int, default=3)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # the robot logs every stroke at INFO
    t0 = time.perf_counter()
    try:
        spec = generate_fn(a.root, a.train, a.val, a.frames, a.height, a.width, a.seed,
                           (a.min_objects, a.max_objects), progress=not a.quiet)
    except (ValueError, DatasetError) as exc:
        p.error(str(exc))
    n_obj = sum(m["num_objects"] for m in spec.sequences.values())
    log.info("wrote %d sequences (%d objects) to %s in %.1f s", len(spec.sequences), n_obj, spec.root,
             time.perf_counter() - t0)
    return 0


def main(argv: list[str] | None = None) -> int:
    return generator_cli("python -m datasets.synthetic", generate, "data/synthetic", __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
