"""The VOSBackend contract, for every backend that can be built here: ``classic``, and ATNet, MANet and IPN
from their checkouts (VOS/<Name>, else ../shared/vos-checkouts/<Name>) with random weights saved by the test
in the published layouts (benchmarks/random_weights.py).

Each backend is built once per module and driven through one fixed script of rounds (tiny 5-frame 64x96
clip, 2 objects); the tests assert on what that script recorded, so none depends on another or on their
order. Add a backend by appending its registry name to ``BACKENDS_UNDER_TEST``.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests.helpers import checkout_marks, require_checkout_path, torch_threads
from VOS._checkout import WeightsMissing
from VOS.base import BackendError, RoundOutput
from VOS.registry import build_backend

#: checkout-based ones carry the checkout marks (they skip only when no checkout can be had)
BACKENDS_UNDER_TEST = ["classic"] + [pytest.param(n, marks=checkout_marks(n)) for n in ("atnet", "manet", "ipn")]
#: small options that make a backend fast on a tiny video (per backend; default none)
OPTIONS: dict[str, dict] = {"classic": {"work_size": 96}}
#: backends whose masks follow the strokes (a network with random weights cannot be asked to)
FOLLOWS_STROKES = {"classic"}
#: per-channel probabilities that need not sum to 1: ATNet keeps independent per-object sigmoids with
#: channel 0 = 1 - max (as the published wrapper used them)
INDEPENDENT_PROBS = {"atnet"}

T, H, W, K = 5, 64, 96, 2


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


EMPTY = {"sequence": "contract", "scribbles": [[] for _ in range(T)]}


def _raises(fn, *args) -> type | None:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the type is what the tests look at
        return type(exc)
    return None


def _options(name: str, tmp_path_factory) -> dict:
    if name in OPTIONS or name == "classic":
        return OPTIONS.get(name, {})
    from benchmarks.random_weights import save_random_weights

    opts = save_random_weights(name, tmp_path_factory.mktemp(f"rw-{name}"), require_checkout_path(name))
    return opts | ({"size": (H, W)} if name == "manet" else {})


def _script(name: str, tmp_path_factory) -> dict:
    """Build the backend, then: interact before start; bad videos; start; round on 2; empty round on 1;
    save state; round on 2 again (a repeated frame); restore; the same round again; save; a round inside
    trial(); round on 3; restore; round on 3; bad frames. Returns what each step gave."""
    with torch_threads(1):
        b = build_backend(name, "cpu", **_options(name, tmp_path_factory))
        r: dict = {"name": name, "before_start": _raises(b.interact, 0, _scribbles(0)),
                   "bad_video": [_raises(b.start, np.zeros((T, H, W), np.uint8), K), _raises(b.start, _video(), 0)]}
        b.start(_video(), K)
        r["first"] = b.interact(2, _scribbles(2))
        r["empty"] = b.interact(1, EMPTY)
        saved = b.get_state()
        r["a"] = b.interact(2, _scribbles(2, shift=4))        # a repeated frame is allowed
        r["saved_annotated"] = list(saved["annotated"])
        b.set_state(saved)                                    # forgets round "a"
        r["annotated_after_restore"] = list(b.annotated)
        r["b"] = b.interact(2, _scribbles(2, shift=4))
        saved2 = b.get_state()
        with b.trial():
            r["in_trial"] = b.interact(0, _scribbles(0, shift=5))
        r["c"] = b.interact(3, _scribbles(3))
        b.set_state(saved2)
        r["d"] = b.interact(3, _scribbles(3))
        r["bad_frame"] = [_raises(b.interact, f, _scribbles(0)) for f in (-1, T)]
    return r


@pytest.fixture(scope="module")
def script_of(tmp_path_factory):
    """``script_of(name)``: :func:`_script` of backend ``name``, run once per module whichever test asks first."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            done[name] = _script(name, tmp_path_factory)
        return done[name]

    return get


def _check(name: str, out: RoundOutput) -> None:
    assert isinstance(out, RoundOutput)
    assert out.masks.shape == (T, H, W) and out.masks.dtype == np.uint8
    assert out.probs.shape == (T, K + 1, H, W) and out.probs.dtype == np.float32
    assert out.masks.max() <= K
    assert np.isfinite(out.probs).all() and out.probs.min() >= 0 and out.probs.max() <= 1
    if name in INDEPENDENT_PROBS:
        np.testing.assert_allclose(out.probs[:, 0], 1 - out.probs[:, 1:].max(1), atol=1e-6)
    else:
        np.testing.assert_allclose(out.probs.sum(1), 1.0, atol=1e-4)
        # the mask is the most probable label
        top = np.take_along_axis(out.probs, out.masks[:, None].astype(np.int64), 1)[:, 0]
        np.testing.assert_allclose(top, out.probs.max(1), atol=1e-6)
    assert "total" in out.timings and out.timings["total"] >= 0


@pytest.mark.parametrize("name", BACKENDS_UNDER_TEST)
def test_round_outputs_have_the_interface_shapes_and_ranges(script_of, name):
    script = script_of(name)
    for key in ("first", "empty", "a", "b", "in_trial", "c", "d"):
        _check(script["name"], script[key])


@pytest.mark.parametrize("name", sorted(FOLLOWS_STROKES))
def test_strokes_respected(script_of, name):
    m = script_of(name)["first"].masks[2]
    assert (m[13, 14:40] == 1).all() and (m[33, 26:62] == 2).all()


@pytest.mark.parametrize("name", BACKENDS_UNDER_TEST)
def test_state_copy_restore_gives_identical_continuations(script_of, name):
    script = script_of(name)
    np.testing.assert_array_equal(script["a"].masks, script["b"].masks)
    np.testing.assert_array_equal(script["a"].probs, script["b"].probs)
    # trial() undoes what happens inside it
    np.testing.assert_array_equal(script["c"].masks, script["d"].masks)
    np.testing.assert_array_equal(script["c"].probs, script["d"].probs)


@pytest.mark.parametrize("name", BACKENDS_UNDER_TEST)
def test_state_is_a_copy(script_of, name):
    script = script_of(name)
    assert script["saved_annotated"] == [2, 1]
    assert script["annotated_after_restore"] == [2, 1]


@pytest.mark.parametrize("name", BACKENDS_UNDER_TEST)
def test_errors(script_of, name):
    script = script_of(name)
    assert script["before_start"] is not None and issubclass(script["before_start"], BackendError)
    assert all(e is not None and issubclass(e, ValueError) for e in script["bad_video"])
    assert all(e is not None and issubclass(e, ValueError) for e in script["bad_frame"])


#: the option naming a network's weight file and the file's published name
WEIGHT_OPTION = {"atnet": ("weights", "ATNet-checkpoint.pth"), "manet": ("weights", "save_step_80000.pth"),
                 "ipn": ("weights_i", "I.pth")}


@pytest.mark.parametrize("name", [pytest.param(n, marks=checkout_marks(n)) for n in WEIGHT_OPTION])
def test_missing_weights_name_the_path_and_the_fix(name, tmp_path):
    key, file = WEIGHT_OPTION[name]
    with pytest.raises(WeightsMissing, match=re.escape(str(tmp_path / file)) + ".*see README, 'VOS networks'"):
        build_backend(name, "cpu", checkout=require_checkout_path(name), **{key: tmp_path / file})
