"""The VOSBackend contract, for every backend that builds without an external checkout.

Add a backend by appending its registry name to ``BACKENDS_UNDER_TEST`` (checkout-based ones can
be added with ``pytest.param(name, marks=pytest.mark.checkout)`` and skip themselves when absent).
"""
from __future__ import annotations

import numpy as np
import pytest

from VOS.base import BackendError, RoundOutput
from VOS.registry import build_backend

BACKENDS_UNDER_TEST = ["classic"]
#: small options that make a backend fast on a tiny video (per backend; default none)
OPTIONS: dict[str, dict] = {"classic": {"work_size": 96}}

T, H, W, K = 5, 48, 80, 2


def _video() -> np.ndarray:
    rng = np.random.default_rng(1)
    frames = rng.integers(60, 120, (T, H, W, 3)).astype(np.uint8)
    for t in range(T):   # two bars moving right
        frames[t, 10:16, 8 + 2 * t:48 + 2 * t] = (230, 30, 30)
        frames[t, 30:36, 20 + 2 * t:70 + 2 * t] = (30, 30, 230)
    return frames


def _scribbles(frame: int, shift: int = 0) -> dict:
    """Hand-made strokes in davisinteractive format: one per object along its bar, one background."""
    y1, y2, y0 = 13 / H, 33 / H, 44 / H
    per_frame: list[list[dict]] = [[] for _ in range(T)]
    per_frame[frame] = [
        {"path": [[(12 + 2 * frame) / W, y1], [(40 + 2 * frame) / W, y1]], "object_id": 1, "start_time": 0, "end_time": 1},
        {"path": [[(24 + 2 * frame) / W, y2], [(62 + 2 * frame) / W, y2]], "object_id": 2, "start_time": 1, "end_time": 2},
        {"path": [[(5 + shift) / W, y0], [(75 - shift) / W, y0]], "object_id": 0, "start_time": 2, "end_time": 3},
    ]
    return {"sequence": "contract", "scribbles": per_frame}


@pytest.fixture(params=BACKENDS_UNDER_TEST)
def backend(request):
    b = build_backend(request.param, "cpu", **OPTIONS.get(request.param, {}))
    b.start(_video(), K)
    return b


def _check(out: RoundOutput) -> None:
    assert isinstance(out, RoundOutput)
    assert out.masks.shape == (T, H, W) and out.masks.dtype == np.uint8
    assert out.probs.shape == (T, K + 1, H, W) and out.probs.dtype == np.float32
    assert out.masks.max() <= K
    assert np.isfinite(out.probs).all() and out.probs.min() >= 0 and out.probs.max() <= 1
    np.testing.assert_allclose(out.probs.sum(1), 1.0, atol=1e-4)
    # the relation every backend must keep: the mask is the most probable label
    top = np.take_along_axis(out.probs, out.masks[:, None].astype(np.int64), 1)[:, 0]
    np.testing.assert_allclose(top, out.probs.max(1), atol=1e-6)
    assert "total" in out.timings and out.timings["total"] >= 0


def test_round_output_shapes_and_ranges(backend):
    out = backend.interact(2, _scribbles(2))
    _check(out)
    assert (out.masks[2][13, 14:40] == 1).all() and (out.masks[2][33, 26:62] == 2).all()  # strokes respected
    _check(backend.interact(0, _scribbles(0)))
    _check(backend.interact(0, _scribbles(0, shift=3)))   # a repeated frame is allowed


def test_empty_scribbles_are_accepted(backend):
    _check(backend.interact(1, {"sequence": "contract", "scribbles": [[] for _ in range(T)]}))


def test_state_copy_restore_gives_identical_continuations(backend):
    backend.interact(1, _scribbles(1))
    saved = backend.get_state()
    a = backend.interact(4, _scribbles(4))
    backend.interact(0, _scribbles(0, shift=4))   # more rounds that restoring must forget
    backend.interact(3, _scribbles(3, shift=2))
    backend.set_state(saved)
    b = backend.interact(4, _scribbles(4))
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.probs, b.probs)
    with backend.trial():   # trial() undoes what happens inside it
        backend.interact(0, _scribbles(0, shift=5))
    c = backend.interact(3, _scribbles(3))
    backend.set_state(saved)
    backend.interact(4, _scribbles(4))
    d = backend.interact(3, _scribbles(3))
    np.testing.assert_array_equal(c.probs, d.probs)


def test_state_is_a_copy(backend):
    backend.interact(1, _scribbles(1))
    saved = backend.get_state()
    backend.interact(3, _scribbles(3))
    assert saved["annotated"] == [1]
    backend.set_state(saved)
    assert backend.annotated == [1]


@pytest.mark.parametrize("name", BACKENDS_UNDER_TEST)
def test_interact_before_start_raises(name):
    b = build_backend(name, "cpu", **OPTIONS.get(name, {}))
    with pytest.raises(BackendError):
        b.interact(0, _scribbles(0))


@pytest.mark.parametrize("frame", [-1, T])
def test_bad_frame_raises(backend, frame):
    with pytest.raises(ValueError):
        backend.interact(frame, _scribbles(0))


@pytest.mark.parametrize("name", BACKENDS_UNDER_TEST)
def test_bad_video_raises(name):
    b = build_backend(name, "cpu", **OPTIONS.get(name, {}))
    with pytest.raises(ValueError):
        b.start(np.zeros((T, H, W), np.uint8), K)
    with pytest.raises(ValueError):
        b.start(_video(), 0)
