"""The consecutive frame window a training episode runs on (PROTOCOL.md §5), and the scribbles seen through it."""
from __future__ import annotations


def episode_window(num_frames: int, first_frame: int, length: int = 25) -> tuple[int, int]:
    """Window of ``L = min(length, num_frames)`` consecutive frames around ``first_frame``.

    start = int((max(0, f - L + 1) + f - max(f + L - T, 0)) / 2): the midpoint between the
    leftmost window that still contains f and the rightmost one that fits in the video.
    Returns (start, stop), stop exclusive, with 0 <= start <= first_frame < stop <= num_frames.
    Examples (T=80, L=25): f=40 -> (28, 53); f=75 -> (53, 78); f=2 -> (1, 26).
    """
    T, f = int(num_frames), int(first_frame)
    if T < 1 or not 0 <= f < T:
        raise ValueError(f"first_frame {first_frame} outside a {num_frames}-frame video")
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    L = min(int(length), T)
    start = int((max(0, f - L + 1) + f - max(f + L - T, 0)) / 2)
    return start, start + L


def window_scribbles(scribbles: dict, start: int, stop: int) -> dict:
    """A davisinteractive scribble dict restricted to frames [start, stop): its ``scribbles`` list is
    window-relative (entry i holds the strokes of frame start + i)."""
    return {"sequence": scribbles.get("sequence"), "scribbles": scribbles["scribbles"][start:stop]}
