"""ROI box and crop (agent/roi.py) against values computed by hand."""
import numpy as np
import pytest
import torch

from agent.roi import crop_pairs, crop_resample, roi_box, roi_boxes


def _mask(H, W, rows, cols):
    m = np.zeros((H, W), np.float32)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = 0.9
    return m


def test_empty_mask_is_whole_frame_grown_scaled_clamped():
    # whole frame (0,0,199,99); height 99 -> 128 about centre 49.5; x half 199/2*1.5 = 149.25 -> clamp
    box = roi_box(np.zeros((100, 200), np.float32))
    np.testing.assert_allclose(box, [-5, -5, 205, 105])


def test_small_object_grown_to_min_size():
    # bbox (300,200,319,209), centre (309.5,204.5), both sides -> 128, half 64*1.5 = 96
    box = roi_box(_mask(480, 854, (200, 209), (300, 319)))
    np.testing.assert_allclose(box, [213.5, 108.5, 405.5, 300.5])


def test_object_at_border_is_clamped():
    # bbox (800,0,853,49), centre (826.5,24.5), half 96: x (730.5, 922.5->859), y (-71.5->-5, 120.5)
    box = roi_box(_mask(480, 854, (0, 49), (800, 853)))
    np.testing.assert_allclose(box, [730.5, -5, 859, 120.5])


def test_large_object_scaled_only_and_threshold_strict():
    # bbox (100,100,299,399): sides 199, 299; halves 149.25, 224.25 about (199.5, 249.5)
    m = _mask(480, 854, (100, 399), (100, 299))
    m[0, 0] = 0.5                       # exactly 0.5 is not foreground
    np.testing.assert_allclose(roi_box(m), [50.25, 25.25, 348.75, 473.75])
    np.testing.assert_allclose(roi_box(m, min_size=64, scale=1.0, margin=0), [100, 100, 299, 399])


def test_batched_boxes_equal_single():
    probs = np.stack([np.zeros((100, 200), np.float32), _mask(100, 200, (10, 20), (30, 40))])
    boxes = roi_boxes(probs, min_size=16)
    for i in range(2):
        np.testing.assert_allclose(boxes[i], roi_box(probs[i], min_size=16))
    # object: bbox (30,10,40,20), sides 10 -> 16, half 12 about (35,15)
    np.testing.assert_allclose(boxes[1], [23, 3, 47, 27])


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
