"""Check a user's scribbles and turn them into one round's davisinteractive scribble dict.

Format (PROTOCOL.md §2, the one every backend takes): ``{"sequence": name, "scribbles": [per frame:
[{"path": [[x, y], ...] in [0, 1] normalised by (W, H), "object_id": int, "start_time": float,
"end_time": float}, ...]]}``; object 0 is the background. One round annotates one frame.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: points may lie this far outside [0, 1] (a brush stroke ending past the frame's edge); they are clipped
EDGE_TOLERANCE = 0.05


class ScribbleError(ValueError):
    """Scribbles that cannot be used; the message says which stroke and why."""


def read_scribble_file(path: str | os.PathLike) -> dict:
    """Read a davisinteractive scribble JSON file."""
    p = Path(path)
    if not p.is_file():
        raise ScribbleError(f"{p}: no such scribble file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ScribbleError(f"{p}: not a JSON scribble file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("scribbles"), list):
        raise ScribbleError(f"{p}: expected {{\"scribbles\": [per frame: [strokes]]}} (davisinteractive format)")
    return data


def strokes_by_frame(scribbles: dict) -> dict[int, list[dict]]:
    """{frame: [stroke, ...]} of the frames that have at least one stroke."""
    return {t: list(s) for t, s in enumerate(scribbles.get("scribbles", [])) if s}


def check_strokes(strokes: Sequence[dict], frame: int, num_frames: int, num_objects: int) -> list[dict]:
    """Validated copies of ``strokes`` on ``frame``: paths (N, 2) clipped to [0, 1], ids 0..K.

    Raises :class:`ScribbleError` for a frame out of range, an object id outside 0..K, a stroke without
    points, points far outside the frame, or no stroke at all.
    """
    if not 0 <= int(frame) < num_frames:
        raise ScribbleError(f"frame {frame} is outside the video (frames 0..{num_frames - 1})")
    out = []
    for i, s in enumerate(strokes):
        if not isinstance(s, dict) or "path" not in s or "object_id" not in s:
            raise ScribbleError(f"stroke {i} on frame {frame}: expected {{'path': [[x, y], ...], 'object_id': k}}")
        try:
            obj = int(s["object_id"])
            path = np.asarray(s["path"], np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise ScribbleError(f"stroke {i} on frame {frame}: path must be a list of [x, y] pairs") from None
        if not 0 <= obj <= num_objects:
            raise ScribbleError(f"stroke {i} on frame {frame} is for object {obj}, but the session has "
                                f"{num_objects} object(s): ids 1..{num_objects}, 0 = background")
        if len(path) == 0:
            raise ScribbleError(f"stroke {i} on frame {frame} has no points")
        if not np.isfinite(path).all() or path.min() < -EDGE_TOLERANCE or path.max() > 1 + EDGE_TOLERANCE:
            raise ScribbleError(f"stroke {i} on frame {frame}: points must be normalised by (width, height) "
                                f"to [0, 1]; got values in [{path.min():.3g}, {path.max():.3g}]")
        out.append({"path": np.clip(path, 0.0, 1.0).tolist(), "object_id": obj,
                    "start_time": float(s.get("start_time", 0.0)), "end_time": float(s.get("end_time", 0.0))})
    if not out:
        raise ScribbleError(f"no stroke on frame {frame}: draw at least one stroke (an object or the background)")
    return out


def round_scribbles(scribbles: dict | Sequence[dict], num_frames: int, num_objects: int,
                    frame: int | None = None, sequence: str = "video") -> tuple[int, dict]:
    """(frame, davisinteractive dict with strokes on that frame only) from what a user gave.

    ``scribbles``: a davisinteractive dict (strokes on exactly one frame; ``frame`` may confirm it), or
    a list of strokes with ``frame`` given.
    """
    if isinstance(scribbles, dict):
        per = strokes_by_frame(scribbles)
        n_given = len(scribbles.get("scribbles", []))
        if n_given > num_frames and any(t >= num_frames for t in per):
            bad = [t for t in per if t >= num_frames]
            raise ScribbleError(f"scribbles on frame(s) {bad}, but the video has {num_frames} frames (0..{num_frames - 1})")
        if not per:
            raise ScribbleError("the scribbles have no stroke on any frame: draw at least one stroke")
        if frame is None:
            if len(per) > 1:
                raise ScribbleError(f"scribbles on frames {sorted(per)}: one round annotates one frame; "
                                    f"give one scribble set (file) per frame")
            frame = next(iter(per))
        elif set(per) - {int(frame)}:
            raise ScribbleError(f"scribbles on frames {sorted(per)} but frame {frame} was asked for")
        strokes: Any = per.get(int(frame), [])
        sequence = scribbles.get("sequence") or sequence
    else:
        if frame is None:
            raise ScribbleError("a list of strokes needs the frame it was drawn on")
        strokes = list(scribbles)
    frame = int(frame)
    checked = check_strokes(strokes, frame, num_frames, num_objects)
    per_frame: list[list[dict]] = [[] for _ in range(num_frames)]
    per_frame[frame] = checked
    return frame, {"sequence": sequence, "scribbles": per_frame}
