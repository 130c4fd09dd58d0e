"""The project's J and F (datasets.davis_metrics) against davisinteractive's own functions."""
from __future__ import annotations

import numpy as np
import pytest

from datasets import davis_compat as dc
from datasets import davis_metrics as fm


def _blobs(rng: np.random.Generator, T: int, H: int, W: int, K: int, scale: float) -> np.ndarray:
    """(T, H, W) int64 labels: K random ellipses per frame (later ones over earlier ones), some
    cut by the border, plus sprinkled single pixels."""
    yy, xx = np.mgrid[:H, :W]
    out = np.zeros((T, H, W), np.int64)
    for t in range(T):
        for k in range(1, K + 1):
            if rng.random() < 0.15:
                continue                          # object absent in this frame
            cy, cx = rng.uniform(-0.1, 1.1) * H, rng.uniform(-0.1, 1.1) * W
            ry, rx = rng.uniform(0.3, 1.0) * scale * H, rng.uniform(0.3, 1.0) * scale * W
            out[t][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = k
        n = rng.integers(0, 4)
        out[t, rng.integers(0, H, n), rng.integers(0, W, n)] = rng.integers(1, K + 1, n)
    return out


def _perturb(rng: np.random.Generator, gt: np.ndarray, K: int) -> np.ndarray:
    """A prediction near ``gt``: shifted, with a random box relabelled and noise pixels."""
    T, H, W = gt.shape
    pred = np.roll(gt, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(1, 2)).copy()
    for t in range(T):
        y, x = rng.integers(0, H), rng.integers(0, W)
        pred[t, y:y + H // 4, x:x + W // 5] = rng.integers(0, K + 1)
        m = rng.random((H, W)) < 0.002
        pred[t][m] = rng.integers(0, K + 1, int(m.sum()))
    return pred


def _cases() -> list[tuple[str, np.ndarray, np.ndarray, int | None]]:
    rng = np.random.default_rng(1234)
    cases = []
    z = np.zeros((3, 9, 11), np.int64)
    cases.append(("both empty", z, z.copy(), 2))
    one = z.copy()
    one[1, 4, 5] = 1
    cases.append(("gt empty, pred one pixel", z, one, 1))
    cases.append(("pred empty, gt one pixel", one, z, 1))
    cases.append(("same one pixel", one, one.copy(), 1))
    px = z.copy()
    px[1, 4, 6] = 1
    cases.append(("neighbouring pixels", one, px, 1))
    for y, x in [(0, 0), (0, 10), (8, 0), (8, 10), (8, 5), (4, 10)]:
        c = z.copy()
        c[:, max(y - 1, 0):y + 2, max(x - 2, 0):x + 2] = 1
        c[1, y, x] = 0
        grown = np.maximum(c, np.roll(c, (1, -1), axis=(1, 2)))
        cases.append((f"block at border ({y},{x})", c, grown, 1))
    full = np.ones((2, 7, 6), np.int64)
    cases.append(("full frame (no boundary) vs empty", full, np.zeros_like(full), 1))
    cases.append(("full frame vs full frame", full, full.copy(), 1))
    half = full.copy()
    half[:, :, :3] = 0
    cases.append(("full frame vs right half", full, half, 1))
    cases.append(("void 255 and ids above K", np.where(_blobs(rng, 3, 20, 30, 2, 0.4) == 2, 255, 1),
                  _blobs(rng, 3, 20, 30, 4, 0.4) * 100, 2))
    cases.append(("negative labels", _blobs(rng, 2, 16, 16, 2, 0.5), -_blobs(rng, 2, 16, 16, 2, 0.5) + 1, 2))
    cases.append(("nb_objects inferred, gaps in ids", _blobs(rng, 3, 25, 31, 5, 0.3) * 2,
                  _blobs(rng, 3, 25, 31, 10, 0.3), None))
    for H, W in [(1, 17), (13, 1), (2, 2), (31, 47), (97, 61)]:
        g = _blobs(rng, 3, H, W, 3, 0.4)
        cases.append((f"odd size {H}x{W}", g, _perturb(rng, g, 3), 3))
    g = _blobs(rng, 4, 60, 90, 12, 0.15)
    cases.append(("many objects", g, _perturb(rng, g, 12), 12))
    g = _blobs(rng, 6, 480, 854, 3, 0.25)
    cases.append(("random shapes 480x854", g, _perturb(rng, g, 3), 3))
    cases.append(("480x854 uint8 prediction", g, _perturb(rng, g, 3).astype(np.uint8), 3))
    return cases


CASES = _cases()


@pytest.mark.parametrize("name,gt,pred,k", CASES, ids=[c[0] for c in CASES])
def test_equal_to_the_package(name, gt, pred, k):
    j_ref = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=k)
    f_ref = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=k)
    j = fm.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=k)
    f = fm.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=k)
    assert j.shape == j_ref.shape and f.shape == f_ref.shape
    np.testing.assert_allclose(j, j_ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-6)
    j2, f2 = fm.jaccard_and_f(gt, pred, nb_objects=k)
    np.testing.assert_array_equal(j2, j)
    np.testing.assert_array_equal(f2, f)
    if k is not None and gt.min() >= 0:
        # the loop's path: ground truth prepared once, a window of frames scored
        scorer = fm.MaskScorer(gt, k)
        for start in (0, len(gt) - 1):
            j3, f3 = scorer.score(pred[start:], start=start)
            np.testing.assert_allclose(j3, j_ref[start:], rtol=0, atol=1e-6)
            np.testing.assert_allclose(f3, f_ref[start:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fm.batched_f_measure(gt, pred, nb_objects=k),
                               dc.batched_f_measure(gt, pred, nb_objects=k), rtol=0, atol=1e-6)


def test_bound_th_in_pixels_and_scorer():
    rng = np.random.default_rng(5)
    gt = _blobs(rng, 3, 40, 64, 2, 0.3)
    pred = _perturb(rng, gt, 2)
    for th in (1, 3, 0.05):
        np.testing.assert_allclose(fm.batched_f_measure(gt, pred, False, 2, bound_th=th),
                                   dc.batched_f_measure(gt, pred, False, 2, bound_th=th), rtol=0, atol=1e-6)
    scorer = fm.MaskScorer(gt, 2)
    j, f = scorer.score(pred[1:], start=1)
    np.testing.assert_allclose(j, dc.batched_jaccard(gt[1:], pred[1:], False, 2), rtol=0, atol=1e-6)
    np.testing.assert_allclose(f, dc.batched_f_measure(gt[1:], pred[1:], False, 2), rtol=0, atol=1e-6)


def test_disk_dilation_row_by_row_equals_opencv_with_the_disk():
    import cv2
    from skimage.morphology import disk

    rng = np.random.default_rng(3)
    for r in range(1, 13):
        for shape in [(1, 40), (5, 3), (90, 120)]:
            b = rng.random(shape) < 0.01
            b[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = True
            ref = cv2.dilate(b.astype(np.uint8), disk(r).astype(np.uint8)).astype(bool)
            np.testing.assert_array_equal(fm._dilate_disk(b, r), ref, err_msg=f"r={r} {shape}")


def test_boundary_map_by_hand():
    seg = np.zeros((4, 5), bool)
    seg[1:3, 1:3] = True
    # a pixel differs from its east, south or south-east neighbour; the map sits half a pixel
    # towards the origin, so the 2x2 square's boundary starts one row and column before it
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 0, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(fm.boundary_map(seg), expected)


def test_errors_as_the_package():
    with pytest.raises(ValueError, match="3 dimensions"):
        fm.batched_jaccard(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        fm.batched_f_measure(np.zeros((1, 3, 3)), np.zeros((1, 3, 4)), nb_objects=1)
    with pytest.raises(ValueError, match="higher than 0"):
        fm.batched_jaccard(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)))


def test_the_loop_scores_as_the_package_in_a_window(tiny_davis):
    """A training episode on a 3-frame window: the round's J&F (the project's metrics, J = F = 1 outside
    the window where the ground truth is submitted) equals the package's on the whole-video prediction,
    and so does what the session reports."""
    from agent.selection import RandomSelector
    from interaction.loop import run_episodes
    from tests.helpers import ScribbleFillBackend, object_weighted_jf

    seen, reports = [], []
    recs = run_episodes(tiny_davis, [("bars-a", 2)], "val", ScribbleFillBackend(reach=0), RandomSelector(), rounds=3,
                        window=3, seed=1, progress=False, on_round=lambda rec, rr, out: seen.append(out.masks.copy()),
                        on_sample=lambda rec, report: reports.append(report))
    gt = tiny_davis.annotations("bars-a").astype(np.int64)
    start, stop = recs[0].window
    for rr, masks in zip(recs[0].rounds, seen, strict=True):
        pred = gt.copy()
        pred[start:stop] = masks
        assert rr.jf == pytest.approx(object_weighted_jf(gt, pred, 2), abs=1e-9)
        rows = reports[0][reports[0]["interaction"] == rr.round].sort_values(["frame", "object_id"])
        j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=2)
        np.testing.assert_allclose(rows["jaccard"].to_numpy(), j.ravel(), rtol=0, atol=1e-6)
