"""The real davisinteractive 1.0.4 on this stack, through datasets.davis_compat (no mocks)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from datasets import davis_compat as dc
from datasets.layout import registered


def _strokes(scribbles):
    return [[(s["object_id"], s["path"]) for s in frame] for frame in scribbles["scribbles"]]


def test_numpy_is_not_polluted():
    assert not hasattr(np, "int") and not hasattr(np, "float")


def test_robot_is_deterministic_with_ties():
    # A rectangle of even width has many equidistant medial-axis candidates: an unseeded
    # tie-breaker (scikit-image >= 0.19 default) gives different skeletons from call to call.
    gt = np.zeros((2, 60, 100), np.int64)
    gt[:, 10:30, 10:90] = 1
    gt[:, 36:56, 20:28] = 2
    pred = np.zeros_like(gt)
    pred[:, 10:30, 10:40] = 1
    robot = dc.robot_for(4)
    a = [_strokes(robot.interact("x", pred, gt, nb_objects=2, frame=1)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert {o for o, _ in a[0][1]} >= {1, 2}
    assert a[0][0] == []


def test_robot_matches_legacy_tiebreak():
    """The robot's skeleton is scikit-image's medial_axis with RandomState(0)'s permutation."""
    import davisinteractive.robot.interactive_robot as ir
    from skimage.morphology import medial_axis

    mask = np.zeros((40, 60), bool)
    mask[5:25, 5:55] = True
    order = np.random.RandomState(0).permutation(int(mask.sum()))

    class Fixed(np.random.Generator):
        def permutation(self, x, axis=0):
            assert len(x) == len(order)
            return np.asarray(x)[order]

    expected = medial_axis(mask, rng=Fixed(np.random.PCG64(1)))
    assert np.array_equal(ir.medial_axis(mask), expected)


def _hand_jaccard(gt, pred, k):
    g, p = gt == k, pred == k
    union = (g | p).sum(axis=(1, 2))
    inter = (g & p).sum(axis=(1, 2))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def test_session_rounds_requested_frames_and_summary(tiny_davis, tmp_path):
    spec = tiny_davis
    seqs = spec.subset("val")
    requested = {1: 3, 2: 5, 3: 1}   # round -> frame the next scribble must be on
    rng = np.random.default_rng(0)
    submitted = {}                   # (seq, scribble, round) -> masks
    seen_frames = {}
    with registered(spec, seqs, "val") as subset:
        sess = dc.DavisInteractiveSession(davis_root=str(spec.root), subset=subset, max_nb_interactions=3,
                                          max_time=None, report_save_dir=str(tmp_path))
        with sess:
            n, r = 0, 0
            while sess.next():
                seq, scribbles, new = sess.get_scribbles(only_last=True)
                _, idx = sess.samples[sess.sample_idx]
                r = 1 if new else r + 1
                seen_frames[(seq, idx, r)] = dc.annotated_frames(scribbles)
                gt = spec.annotations(seq).astype(np.int64)
                pred = gt.copy()
                drop = rng.random(len(gt)) < 0.5 - 0.15 * r      # worse masks early on
                pred[drop] = 0
                pred[:, :, : 2 * r] = 0
                submitted[(seq, idx, r)] = pred
                sess.submit_masks(pred, next_scribble_frame_candidates=[requested[r]])
                n += 1
        summary = sess.get_global_summary()
    assert n == len(seqs) * 3 * 3
    for (_, _, r), frames in seen_frames.items():
        if r > 1:   # the robot drew on exactly the frame requested after the previous round
            assert frames in ([requested[r - 1]], [])
    assert any(frames == [requested[1]] for (_, _, r), frames in seen_frames.items() if r == 2)

    # Independent computation: per (round, seq, scribble, object) the frame-mean of (J + F) / 2,
    # J by hand, F with the package's boundary measure; then the plain mean over rows.
    rows = []
    for (seq, _, r), pred in submitted.items():
        gt = spec.annotations(seq).astype(np.int64)
        f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=2)
        for k in (1, 2):
            j = _hand_jaccard(gt, pred, k)
            rows.append((r, (0.5 * (j + f[:, k - 1])).mean()))
    df = pd.DataFrame(rows, columns=["r", "jf"])
    expected = [0.0] + df.groupby("r")["jf"].mean().tolist()
    curve = summary["curve"]["J_AND_F"]
    assert len(curve) == 5 and curve[-1] == curve[-2]       # the package repeats the last point
    np.testing.assert_allclose(curve[:4], expected, atol=1e-9)
    assert 0 < summary["auc"] <= 1
