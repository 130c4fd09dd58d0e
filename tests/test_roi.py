"""ROI box and crop (agent/roi.py) against values computed by hand."""
import numpy as np
import pytest
import torch

from agent.roi import bounding_boxes, crop_pairs, crop_resample, roi_box, roi_boxes


def _mask(H, W, rows, cols):
    m = np.zeros((H, W), np.float32)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = 0.9
    return m


# Expected boxes below are worked out by hand from PROTOCOL.md §6, per axis: (lo, hi) = first/last index of
# (prob > 0.5) (0, n when empty); if hi - lo < 128: r = 128 - (hi - lo), both move out by int(r / 2);
# s0 = hi - lo + 1, lo = max(-5, lo - s0/4), hi = min(n + 5, hi + s0/4); c = (hi + lo)/2, s = hi - lo + 1;
# the grid spans c -+ s/2.
def test_empty_map_is_0_to_H_not_H_minus_1():
    # y (H=100): (0, 100) -> r 28, +-14 -> (-14, 114); s0 129, +-32.25 -> (-5, 105); c 50, s 111 -> (-5.5, 105.5)
    # x (W=200): (0, 200) no growth; s0 201, +-50.25 -> (-5, 205); c 100, s 211 -> (-5.5, 205.5)
    box = roi_box(np.zeros((100, 200), np.float32))
    np.testing.assert_allclose(box, [-5.5, -5.5, 205.5, 105.5])
    # a soft map with nothing above 0.5 is empty too
    np.testing.assert_allclose(roi_box(np.full((100, 200), 0.5, np.float32)), box)


def test_small_object_grown_with_truncated_half():
    # y: rows 200..209 -> r 119, int(59.5) = 59 -> (141, 268); s0 128, +-32 -> (109, 300); c 204.5, s 192
    #    -> (108.5, 300.5).  x: cols 300..319 -> r 109, int(54.5) = 54 -> (246, 373); s0 128 -> (214, 405);
    #    c 309.5, s 192 -> (213.5, 405.5)
    box = roi_box(_mask(480, 854, (200, 209), (300, 319)))
    np.testing.assert_allclose(box, [213.5, 108.5, 405.5, 300.5])
    # near a corner, clamped at -5 on both axes: rows 10..20 (diff 10, r 118, +-59 -> (-49, 79); s0 129, +-32.25 -> (-5, 111.25); c 53.125,
    # s 117.25 -> (-5.5, 111.75)); cols 30..32 (diff 2, r 126, +-63 -> (-33, 95); s0 129 -> (-5, 127.25);
    # c 61.125, s 133.25 -> (-5.5, 127.75))
    np.testing.assert_allclose(roi_box(_mask(200, 300, (10, 20), (30, 32))), [-5.5, -5.5, 127.75, 111.75])


def test_soft_map_touching_the_border():
    # foreground rows 0..49, cols 800..853 (the right border); around it soft values <= 0.5 that do not count
    m = np.zeros((480, 854), np.float32)
    m[0:80, 700:854] = 0.3
    m[0:50, 800:854] = np.linspace(0.51, 0.99, 54, dtype=np.float32)[None, :]
    m[60, 760] = 0.5
    # y: (0, 49) -> r 79, +-39 -> (-39, 88); s0 128, +-32 -> (-5, 120); c 57.5, s 126 -> (-5.5, 120.5)
    # x: (800, 853) -> r 75, +-37 -> (763, 890); s0 128, +-32 -> (731, 859); c 795, s 129 -> (730.5, 859.5)
    np.testing.assert_allclose(roi_box(m), [730.5, -5.5, 859.5, 120.5])


def test_large_object_scaled_only_and_threshold_strict():
    # y: rows 100..399 (no growth); s0 300, +-75 -> (25, 474); c 249.5, s 450 -> (24.5, 474.5)
    # x: cols 100..299; s0 200, +-50 -> (50, 349); c 199.5, s 300 -> (49.5, 349.5)
    m = _mask(480, 854, (100, 399), (100, 299))
    m[0, 0] = 0.5                       # exactly 0.5 is not foreground
    np.testing.assert_allclose(roi_box(m), [49.5, 24.5, 349.5, 474.5])
    # min_size 64, scale 1, margin 0: (100, 399) -> c 249.5, s 300 -> (99.5, 399.5); x (99.5, 299.5)
    np.testing.assert_allclose(roi_box(m, min_size=64, scale=1.0, margin=0), [99.5, 99.5, 299.5, 399.5])


def test_batched_boxes_equal_single():
    probs = np.stack([np.zeros((100, 200), np.float32), _mask(100, 200, (10, 20), (30, 40))])
    boxes = roi_boxes(probs, min_size=16)
    for i in range(2):
        np.testing.assert_allclose(boxes[i], roi_box(probs[i], min_size=16))
    # object, min_size 16: y (10, 20) -> r 6, +-3 -> (7, 23); s0 17, +-4.25 -> (2.75, 27.25); c 15, s 25.5
    # -> (2.25, 27.75); x (30, 40) likewise about 35 -> (22.25, 47.75)
    np.testing.assert_allclose(boxes[1], [22.25, 2.25, 47.75, 27.75])
    np.testing.assert_array_equal(bounding_boxes(probs), [[0, 0, 200, 100], [30, 10, 40, 20]])


def test_crop_samples_pixel_centres_bilinear():
    H, W = 70, 90
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    img = torch.from_numpy(xs + 1000 * ys)[None, None]           # linear: bilinear reproduces it exactly
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    out = crop_resample(img, box, out_size=5)[0, 0].numpy()
    expected = (10 + 5 * np.arange(5))[None, :] + 1000 * (20 + 10 * np.arange(5))[:, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    # half-pixel positions interpolate
    out = crop_resample(img, torch.tensor([[10.5, 20.5, 11.5, 21.5]]), out_size=2)[0, 0].numpy()
    np.testing.assert_allclose(out, [[20510.5, 20511.5], [21510.5, 21511.5]], rtol=1e-6)


def test_crop_outside_frame_is_zero():
    img = torch.ones(1, 1, 30, 30)
    out = crop_resample(img, torch.tensor([[-5.0, -5.0, 34.0, 34.0]]), out_size=40)[0, 0]   # step 1 px
    assert out[0, 0] == 0 and out[-1, -1] == 0       # samples at (-5,-5) and (34,34): outside
    assert out[5, 5] == pytest.approx(1.0)          # sample at (0,0)


def test_crop_pairs_index_matches_per_image():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 40, 50, generator=g)
    probs = torch.rand(3, 1, 40, 50, generator=g)
    boxes = torch.tensor([[0.0, 0.0, 49.0, 39.0], [5.0, 3.0, 20.0, 30.0], [-5.0, 10.0, 54.0, 44.0]])
    index = torch.tensor([0, 0, 1])
    imgs, maps = crop_pairs(frames, probs, boxes, index, out_size=16)
    assert imgs.shape == (3, 3, 16, 16) and maps.shape == (3, 1, 16, 16)
    for n in range(3):
        ref = crop_resample(frames[index[n]:index[n] + 1], boxes[n:n + 1], 16)
        torch.testing.assert_close(imgs[n:n + 1], ref)
        torch.testing.assert_close(maps[n:n + 1], crop_resample(probs[n:n + 1], boxes[n:n + 1], 16))
    # the whole-frame box at full resolution returns the frame itself
    full = crop_resample(frames[:1], torch.tensor([[0.0, 0.0, 49.0, 39.0]]), 40)
    assert full.shape == (1, 3, 40, 40)
    torch.testing.assert_close(crop_resample(frames[:1, :, :40, :40], torch.tensor([[0.0, 0.0, 39.0, 39.0]]), 40),
                               frames[:1, :, :40, :40], rtol=1e-5, atol=1e-5)
