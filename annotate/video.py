"""Read a user's video (a file OpenCV decodes, or a folder of frames) at a stated working size.

Working size: the longest side is at most ``max_side`` (854 px, DAVIS' 480p) and the whole video
holds at most ``max_pixels`` pixels over all its frames (T·h·w <= 100 × 480 × 854 by default, the
size of a 100-frame 480p clip), so that masks and probabilities of a long video stay within memory:
a 1,000-frame 480p video is worked on at 152 × 270. Masks are exported at the original size.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_SIDE = 854
MAX_PIXELS = 100 * 480 * 854


class VideoError(ValueError):
    """A video cannot be read; the message names the file and what to do."""


@dataclass
class Video:
    """frames: (T, h, w, 3) uint8 RGB at the working size; full_size: (H, W) of the source."""

    source: str
    frames: np.ndarray
    full_size: tuple[int, int]
    fps: float
    fingerprint: str

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def work_size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def working_size(num_frames: int, height: int, width: int, max_side: int = MAX_SIDE,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(h, w) within ``max_side`` and with ``num_frames * h * w <= max_pixels`` (never upscaled)."""
    s = min(1.0, max_side / max(height, width), np.sqrt(max_pixels / max(1, num_frames * height * width)))
    return max(16, int(height * s)), max(16, int(width * s))


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _resize(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == hw:
        return rgb
    return cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def _read_folder(path: Path) -> tuple[list[np.ndarray], float]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise VideoError(f"{path}: no frames in this folder (expected image files {', '.join(IMAGE_SUFFIXES)}, "
                         f"e.g. 00000.jpg, 00001.jpg, ...)")
    frames = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoError(f"{f}: cannot be read as an image; remove it from {path} or re-save it as JPEG/PNG")
        if frames and bgr.shape != frames[0].shape:
            raise VideoError(f"{f}: size {bgr.shape[1]}x{bgr.shape[0]} differs from the first frame's "
                             f"{frames[0].shape[1]}x{frames[0].shape[0]}; every frame must have the same size")
        frames.append(bgr)
    return frames, 0.0


def _read_file(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open this file as a video; convert it to mp4 (H.264) or "
                             f"give a folder of frames")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr)
    finally:
        cap.release()
    if not frames:
        raise VideoError(f"{path}: no frame could be decoded (zero-frame or unreadable video); convert it to "
                         f"mp4 (H.264) or give a folder of frames")
    return frames, fps


def load_video(path: str | os.PathLike, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> Video:
    """Read ``path`` (a video file or a folder of frames) and downscale it to the working size.

    Returns a :class:`Video` whose frames are (T, h, w, 3) uint8 RGB. Raises :class:`VideoError` with
    the file and the fix when nothing can be read.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise VideoError(f"{p}: no such file or folder")
    if p.is_dir():
        raw, fps = _read_folder(p)
    else:
        raw, fps = _read_file(p)
    H, W = raw[0].shape[:2]
    hw = working_size(len(raw), H, W, max_side, max_pixels)
    frames = np.stack([_resize(cv2.cvtColor(b, cv2.COLOR_BGR2RGB), hw) for b in raw])
    del raw
    if hw != (H, W):
        log.info("%s: %d frames of %dx%d worked on at %dx%d", p, len(frames), W, H, hw[1], hw[0])
    return Video(str(p.resolve()), frames, (int(H), int(W)), fps, fingerprint(frames, (H, W)))


def fingerprint(frames: np.ndarray, full_size: tuple[int, int]) -> str:
    """A digest of the working-size frames and the source size: tells a workspace's video from another."""
    h = hashlib.sha1()
    h.update(np.asarray([*frames.shape, *full_size], np.int64).tobytes())
    h.update(np.ascontiguousarray(frames).tobytes())
    return h.hexdigest()
