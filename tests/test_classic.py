"""The ``classic`` backend on a tiny synthetic video with scribbles from the real davisinteractive robot.

The video (8 frames, 64x96) is made here: two elongated textured bars (the robot cannot scribble
blobs) moving 3 px/frame in opposite directions over a textured background, so that a mask that
ignores motion drifts off the objects.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets.davis_compat import batched_f_measure, batched_jaccard, robot_for
from VOS.classic import ClassicBackend, rasterize_strokes

T, H, W, K = 8, 64, 96, 2


def tiny_video(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, gt (T, H, W) uint8 ids 0..2)."""
    rng = np.random.default_rng(seed)
    noise = cv2.resize(rng.uniform(60, 140, (H // 4, W // 4, 3)).astype(np.float32), (W, H))
    background = (noise + rng.normal(0, 6, (H, W, 3))).clip(0, 255)
    frames = np.empty((T, H, W, 3), np.uint8)
    gt = np.zeros((T, H, W), np.uint8)
    bars = [  # (centre x, centre y, length, width, angle deg, vx, vy, colour)
        (30.0, 20.0, 44, 9, 15.0, 3.0, 1.0, (220, 40, 40)),
        (62.0, 44.0, 40, 8, -25.0, -3.0, -1.0, (40, 60, 230)),
    ]
    for t in range(T):
        img = background.copy()
        for k, (cx, cy, L, w, ang, vx, vy, col) in enumerate(bars, 1):
            box = cv2.boxPoints(((cx + vx * t, cy + vy * t), (L, w), ang + 2 * t)).astype(np.int32)
            m = np.zeros((H, W), np.uint8)
            cv2.fillPoly(m, [box], 1)
            stripes = 25 * np.sin(np.arange(W) / 2.0 + k)[None, :, None]
            img = np.where(m[..., None] > 0, np.asarray(col, np.float32) + stripes, img)
            gt[t][m > 0] = k
        frames[t] = img.clip(0, 255).astype(np.uint8)
    return frames, gt


def jandf(gt: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-frame J&F averaged over objects, as the benchmark computes it."""
    j = batched_jaccard(gt, masks, average_over_objects=True, nb_objects=K)
    f = batched_f_measure(gt, masks, average_over_objects=True, nb_objects=K)
    return (j + f) / 2


@pytest.fixture(scope="module")
def video():
    return tiny_video()


@pytest.fixture(scope="module")
def robot():
    return robot_for(min_nb_nodes=4)


def test_rasterize_strokes_scales_by_width_and_height():
    stroke = {"path": [[0.0, 0.5], [0.999, 0.5]], "object_id": 2}
    lab = rasterize_strokes([stroke, {"path": [[0.5, 0.0], [0.5, 0.99]], "object_id": 0}], 10, 20)
    assert (lab[5, :10] == 2).all() and (lab[5, 11:] == 2).all()   # full row 5 (x from 0 to 19)
    assert (lab[:, 10] == 0).all()                                  # later stroke wins at the crossing
    assert (lab >= 0).sum() == 20 + 10 - 1


def test_one_round_beats_trivial_predictors(video, robot):
    frames, gt = video
    f = T // 2
    scribbles = robot.interact("tiny", np.zeros_like(gt, dtype=int), gt.astype(int), nb_objects=K, frame=f)
    assert scribbles["scribbles"][f], "the robot drew nothing; the test video is wrong"
    b = ClassicBackend(work_size=96)
    b.start(frames, K)
    out = b.interact(f, scribbles)
    score = jandf(gt, out.masks).mean()
    # The bound: the best of two predictors that use no image motion. All background scores 0 on
    # every frame (both objects are present everywhere); the ground truth of the annotated frame
    # copied to all frames is what a backend would get that segments the annotated frame perfectly
    # but does not follow the motion. A useful backend must beat both.
    zero = jandf(gt, np.zeros_like(gt)).mean()
    copy = jandf(gt, np.repeat(gt[f:f + 1], T, 0)).mean()
    bound = max(zero, copy)
    assert zero == 0.0 and copy < 0.7   # the sequence really moves
    assert score > bound + 0.05, (score, zero, copy)
    # probabilities carry confidence: lower away from the annotated frame
    top = out.probs.max(1).mean((1, 2))
    assert top[f] > top[0] and top[f] > top[-1]


def test_more_rounds_never_worsen_annotated_frames(video, robot):
    frames, gt = video
    b = ClassicBackend(work_size=96)
    b.start(frames, K)
    f = T // 2
    pred = np.zeros_like(gt, dtype=int)
    annotated: list[int] = []
    previous: dict[int, float] = {}
    for _ in range(4):
        scribbles = robot.interact("tiny", pred, gt.astype(int), nb_objects=K, frame=f)
        out = b.interact(f, scribbles)
        annotated.append(f)
        j = batched_jaccard(gt, out.masks, average_over_objects=True, nb_objects=K)
        for a, before in previous.items():
            assert j[a] >= before - 1e-3, (a, before, j[a])
        previous = {a: j[a] for a in set(annotated)}
        pred = out.masks.astype(int)
        q = jandf(gt, out.masks)
        q[annotated] = np.inf   # oracle-worst among frames not annotated yet
        f = int(np.argmin(q))


def test_flow_is_computed_once_per_video(video, robot):
    frames, gt = video
    b = ClassicBackend(work_size=96)
    b.start(frames, K)
    s = robot.interact("tiny", np.zeros_like(gt, dtype=int), gt.astype(int), nb_objects=K, frame=2)
    b.interact(2, s)
    cache = b.flow()
    b.interact(6, robot.interact("tiny", np.zeros_like(gt, dtype=int), gt.astype(int), nb_objects=K, frame=6))
    assert b.flow() is cache and len(cache.fwd) == T - 1
    with b.trial():
        b.interact(0, s)
    assert b.flow() is cache      # the cache is shared by get_state/set_state, never copied
    b.start(frames, K)
    assert b._flow is None        # a new video gets new flow


def test_frames_outside_the_new_interval_are_kept(video, robot):
    frames, gt = video
    b = ClassicBackend(work_size=96)
    b.start(frames, K)
    zeros = np.zeros_like(gt, dtype=int)
    first = b.interact(2, robot.interact("tiny", zeros, gt.astype(int), nb_objects=K, frame=2))
    second = b.interact(5, robot.interact("tiny", first.masks.astype(int), gt.astype(int), nb_objects=K, frame=5))
    # anchors 2 and 5: frames 0..2 depend on anchor 2 only, so they must not change
    np.testing.assert_array_equal(second.probs[:3], first.probs[:3])
    assert not np.array_equal(second.probs[3:5], first.probs[3:5])


def test_grabcut_does_not_depend_on_process_history():
    """OpenCV's GrabCut draws from a process-wide RNG; a round must not depend on earlier calls."""
    import cv2

    from VOS.classic import segment_annotated

    rng = np.random.default_rng(1)
    image = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    seeds = np.full((120, 160), -1, np.int16)
    seeds[50:60, 60:100] = 1
    seeds[0:5] = 0
    prior = np.zeros((120, 160), np.uint8)
    prior[30:90, 40:120] = 1
    outs = []
    for k in range(4):
        cv2.setRNGSeed(1000 + k)          # a different history before each call
        cv2.randu(np.zeros(10), 0, 1)
        outs.append(segment_annotated(image, seeds, 1, prior))
    for o in outs[1:]:
        assert np.array_equal(np.asarray(o), np.asarray(outs[0]))


def _static_video_with_lookalike(T_: int = 24, H_: int = 72, W_: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """A still, noisy scene: a red bar (object 1) and, 14 px to its right, a red patch of the same
    colour that is background. Nothing moves, so the right answer on every frame is frame 0's."""
    rng = np.random.default_rng(3)
    frames = np.empty((T_, H_, W_, 3), np.uint8)
    gt = np.zeros((T_, H_, W_), np.uint8)
    base = np.full((H_, W_, 3), 90.0)
    base[:, :, 1] = 110
    base[20:52, 30:44] = (210, 40, 40)     # the object
    base[20:52, 58:80] = (210, 40, 40)     # the look-alike background patch
    for t in range(T_):
        frames[t] = (base + rng.normal(0, 4, base.shape)).clip(0, 255).astype(np.uint8)
        gt[t, 20:52, 30:44] = 1
    return frames, gt


def test_propagation_does_not_leak_into_lookalike_background(robot):
    """Carrying an estimate frame to frame with colour evidence fed back grows an object into
    nearby background of its colour, a little more every frame (the earlier chain covered the
    look-alike patch within 9 frames). The chain must stay on the object."""
    frames, gt = _static_video_with_lookalike()
    b = ClassicBackend(work_size=120)
    b.start(frames, 1)
    s = robot.interact("still", np.zeros_like(gt, dtype=int), gt.astype(int), nb_objects=1, frame=0)
    out = b.interact(0, s)
    patch = np.zeros(gt.shape[1:], bool)
    patch[20:52, 58:80] = True
    assert (out.masks[0][patch] == 0).all(), "the annotated frame itself already includes the look-alike"
    leaked = [(out.masks[t][patch] == 1).mean() for t in range(len(gt))]
    assert max(leaked) < 0.05, [round(v, 2) for v in leaked]
    j = batched_jaccard(gt, out.masks, average_over_objects=True, nb_objects=1)
    assert j[-1] > 0.8, j



def test_small_stray_regions_lose_their_label():
    """On a frame where an object is absent, any pixel still given to it scores J = 0 for that
    object; regions far smaller than the object (flow remnants) are dropped, the object is kept."""
    b = ClassicBackend(min_region=0.05)
    P = np.zeros((40, 60, 3), np.float32)
    P[..., 0] = 0.6
    P[..., 1] = 0.3
    P[..., 2] = 0.1
    P[5:25, 5:25, :] = (0.1, 0.8, 0.1)      # object 1: 400 px
    P[30:33, 40:43, :] = (0.2, 0.7, 0.1)    # a 9-px stray piece of object 1
    P[30:34, 50:54, :] = (0.2, 0.1, 0.7)    # a 16-px piece of object 2, the only one it has
    ref = np.array([0.0, 400.0, 200.0])     # largest areas on the anchors, by hand
    b._drop_small(P, ref)
    am = P.argmax(-1)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-6)
    assert (am[5:25, 5:25] == 1).all()                   # 400 >= 0.05 * 400: kept
    assert (am[30:33, 40:43] == 0).all()                 # 9 < 20: the stray piece goes to background
    assert (am[30:34, 50:54] == 2).all()                 # 16 >= 0.05 * 200: kept, though small
    np.testing.assert_allclose(P[31, 41], [2 / 3, 0.0, 1 / 3], rtol=1e-6)   # renormalised by hand


def test_similarity_fit_recovers_a_known_rotation_scale_and_shift():
    """The flow of a mask's pixels under x' = s R x + t (computed here) gives back s R and t, also
    with a fifth of the pixels carrying wrong flow (RANSAC)."""
    from VOS.classic import _similarity

    h, w = 60, 80
    mask = np.zeros((h, w), bool)
    mask[20:40, 15:60] = True
    s, a, t = 1.05, np.deg2rad(4.0), np.array([3.0, -2.0])
    A = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([xs, ys], -1).astype(np.float64)
    flow = (pts @ A.T + t - pts).astype(np.float32)
    flow[::5] += 25.0                       # outliers on every fifth row
    M = _similarity(mask, flow, np.ones((h, w), np.float32))
    np.testing.assert_allclose(M[:, :2], A, atol=1e-3)
    np.testing.assert_allclose(M[:, 2], t, atol=1e-2)
    assert _similarity(mask, flow, np.zeros((h, w), np.float32)) is None   # no consistent pixel: no fit


def test_grabcut_refinement_snaps_a_shifted_mask_onto_the_object():
    """A mask warped 3 px off a uniform object on a contrasting background is pulled back onto it;
    the sure background (another object's core) is never taken."""
    from VOS.classic import _grabcut_refine

    rng = np.random.default_rng(0)
    h, w = 60, 80
    img = np.clip(rng.normal(60, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    obj = np.zeros((h, w), bool)
    obj[20:40, 20:60] = True
    img[obj] = np.clip(rng.normal(200, 8, (int(obj.sum()), 3)), 0, 255).astype(np.uint8)
    warped = np.roll(obj, 3, axis=1).astype(np.float32)
    core = cv2.erode(warped.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    others = np.zeros((h, w), bool)
    others[22:26, 58:64] = True
    out = _grabcut_refine(img[..., ::-1].copy(), warped, core, others)
    iou_before = (warped.astype(bool) & obj).sum() / (warped.astype(bool) | obj).sum()
    iou_after = (out & obj).sum() / (out | obj).sum()
    assert iou_after > 0.95 > iou_before
    assert not out[others].any()


def test_cached_chains_give_the_same_rounds_as_chains_computed_afresh(video, robot):
    """Chains are cached per anchor and reused in later rounds; a backend whose caches are emptied
    before every round (everything recomputed from the anchors) must give identical outputs."""
    frames, gt = video
    cached, fresh = ClassicBackend(work_size=96), ClassicBackend(work_size=96)
    cached.start(frames, K)
    fresh.start(frames, K)
    f, pred = 1, np.zeros_like(gt, dtype=int)
    for _ in range(4):
        scribbles = robot.interact("tiny", pred, gt.astype(int), nb_objects=K, frame=f)
        fresh._chains, fresh._colour_chains = {}, {}
        a, b = cached.interact(f, scribbles), fresh.interact(f, scribbles)
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.probs, b.probs)
        pred = a.masks.astype(int)
        f = int(np.argmin(jandf(gt, a.masks) + np.isin(np.arange(T), cached.annotated) * 9))
    assert len(cached._chains) > 0 and len(cached._colour_chains) > 0


def test_a_corrective_stroke_relabels_the_sliver_it_is_drawn_through():
    """The result has object 1 on columns 10..19; the object really reaches column 28, and the
    correction is drawn down the middle of the missed sliver (column 24, as the robot draws the
    skeleton of an error region). Its distance to the nearest pixel already labelled 1 is 5 (column
    19), so the region relabelled is the disc of radius 5 around each stroke pixel: columns 19..29
    on the stroke's rows, nothing beyond; a stroke farther than ``cap`` from every pixel of its label
    relabels only itself."""
    from VOS.classic import stroke_regions

    prior = np.zeros((40, 40), np.uint8)
    prior[5:35, 10:20] = 1
    seeds = np.full((40, 40), -1, np.int16)
    seeds[10:30, 24] = 1
    filled = stroke_regions(seeds, prior, cap=8.0)
    assert (filled[10:30, 19:30] == 1).all()
    assert (filled[:, 30:] == -1).all() and (filled[:, :19] == -1).all()
    assert (filled[:5] == -1).all() and (filled[35:] == -1).all()   # discs of radius 5 from rows 10..29
    only = stroke_regions(seeds, prior, cap=4.0)
    np.testing.assert_array_equal(only >= 0, seeds >= 0)
    # a background stroke through a false extension of the object: the same disc, label 0
    prior2 = np.zeros((40, 40), np.uint8)
    prior2[5:35, 10:29] = 1          # the object is columns 10..19; 20..28 is wrongly labelled 1
    seeds2 = np.full((40, 40), -1, np.int16)
    seeds2[10:30, 24] = 0
    filled2 = stroke_regions(seeds2, prior2, cap=8.0)   # nearest 0 pixel: column 29, distance 5
    assert (filled2[10:30, 20:29] == 0).all() and (filled2[:, :19] == -1).all()


def test_annotated_frame_cleaning_drops_speckle_and_unstroked_strays():
    """By hand: object 1's largest annotated area is 400 px, so regions under 0.05 * 400 = 20 px
    without a stroke of 1 go (a 9-px speck), a stroked 9-px region stays; object 2 is absent from the
    frame but for a 6-px remnant, which goes (J = 0 for object 2 however small it is). With ``stray``
    0.5 a 150-px region of object 1 with no stroke goes too, being under half the 400-px stroked one."""
    from VOS.classic import clean_labels

    labels = np.zeros((60, 80), np.uint8)
    labels[5:25, 5:25] = 1          # 400 px, stroked
    labels[40:43, 40:43] = 1        # 9 px, no stroke
    labels[40:43, 60:63] = 1        # 9 px, stroked
    labels[30:45, 5:15] = 1         # 150 px, no stroke
    labels[50:52, 70:73] = 2        # 6 px remnant of an absent object
    seeds = np.full(labels.shape, -1, np.int16)
    seeds[15, 8:20] = 1
    seeds[41, 61] = 1
    ref = np.array([0.0, 400.0, 300.0])
    out = clean_labels(labels, seeds, ref, min_region=0.05, stray=0.0)
    expected = labels.copy()
    expected[40:43, 40:43] = 0
    expected[50:52, 70:73] = 0
    np.testing.assert_array_equal(out, expected)
    out2 = clean_labels(labels, seeds, ref, min_region=0.05, stray=0.5)
    expected[30:45, 5:15] = 0
    np.testing.assert_array_equal(out2, expected)


def test_trusted_frames_teach_the_annotated_frames_colour_models():
    """The object is red on its left half and blue on its right; the prior on this frame has only the
    red half, and the one stroke is on red. From this frame's own labels GrabCut learns red as the
    object's colour and blue (a small blue patch far off is background) as background's, so the blue
    half stays background. With a trusted frame below (the whole object labelled, elsewhere), the
    object's model has blue and the blue half joins the object; the far patch is beyond the reach of
    the strokes and keeps the prior's label. Only this frame's labels are returned."""
    from VOS.classic import segment_annotated

    rng = np.random.default_rng(0)
    h, w = 60, 80
    img = (np.full((h, w, 3), 210) + rng.integers(0, 8, (h, w, 3))).astype(np.uint8)
    img[20:40, 30:45] = (200, 30, 30)
    img[20:40, 45:60] = (30, 40, 200)
    img[2:8, 70:78] = (30, 40, 200)             # a small blue patch of background
    gt = np.zeros((h, w), np.uint8)
    gt[20:40, 30:60] = 1
    prior = np.zeros((h, w), np.uint8)
    prior[20:40, 30:45] = 1                     # the red half only
    seeds = np.full((h, w), -1, np.int16)
    seeds[30, 34:42] = 1                        # a stroke on red
    seeds[50, 10:70] = 0                        # a background stroke below
    ref_img = (np.full((h, w, 3), 210) + rng.integers(0, 8, (h, w, 3))).astype(np.uint8)
    ref_img[10:30, 10:25] = (200, 30, 30)
    ref_img[10:30, 25:40] = (30, 40, 200)
    ref_lab = np.zeros((h, w), np.uint8)
    ref_lab[10:30, 10:40] = 1
    kw = dict(num_objects=1, prior=prior, new_seeds=seeds, radius=15.0, iters=3)   # changes within 30 px of the strokes
    alone = segment_annotated(img, seeds, **kw)
    taught = segment_annotated(img, seeds, **kw, refs=[(ref_img, ref_lab)])
    assert taught.shape == (h, w)
    assert (alone[20:40, 45:60] == 1).mean() < 0.1      # blue: background by this frame's colours
    assert (taught[20:40, 45:60] == 1).mean() > 0.9     # blue: object, as the trusted frame shows
    assert (taught[2:8, 70:78] == 0).all() and (taught[20:40, 30:45] == 1).mean() > 0.9


def test_first_segmentation_learns_the_object_from_near_its_stroke():
    """A thin red bar (6 px wide) with a stroke along its middle, on grey, and a blue strip 13-16 px to
    the right of the stroke that only occurs there. Round 1 (no prior) with the whole ``radius`` disc (20 px) as
    probable object puts the blue strip into the object's colour model and the strip joins the bar;
    with the probable zone at half the radius (10 px: the bar and some grey, not the strip) blue is
    background's colour and the result is the bar (IoU with the bar computed by hand)."""
    from VOS.classic import segment_annotated

    rng = np.random.default_rng(0)
    h, w = 100, 120
    img = (np.full((h, w, 3), 200) + rng.integers(0, 8, (h, w, 3))).astype(np.uint8)
    img[20:80, 40:46] = (200, 30, 30)            # the object: a thin bar, columns 40..45
    img[20:80, 56:60] = (30, 40, 200)            # background: a blue strip, 13-16 px right of the stroke
    bar = np.zeros((h, w), bool)
    bar[20:80, 40:46] = True
    seeds = np.full((h, w), -1, np.int16)
    seeds[25:75, 43] = 1                         # the stroke along the bar's middle
    kw = dict(num_objects=1, prior=None, radius=20.0, iters=3)

    def iou(lab):
        m = lab == 1
        return (m & bar).sum() / (m | bar).sum()

    whole = segment_annotated(img, seeds, **kw, first_radius=1.0)
    half = segment_annotated(img, seeds, **kw, first_radius=0.5)
    assert (whole[20:80, 56:60] == 1).mean() > 0.5     # the strip taken for the object
    assert (half[20:80, 56:60] == 1).mean() < 0.1
    assert iou(half) > 0.9 > iou(whole)
