"""The own-video session API (annotate/) on a tiny clip the tests write: 8 frames, 64x96, two objects."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from agent.qnet import QNet
from agent.quality import QualityAssessor, QualityNet
from annotate import Session, SessionError
from annotate.video import working_size

T, H, W = 8, 64, 96
RED, BLUE, GREEN = (220, 40, 40), (40, 40, 220), (60, 140, 60)


def boxes(t: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of object 1 (a horizontal red bar moving right) and object 2 (a vertical blue bar)."""
    return (12, 22, 8 + 2 * t, 48 + 2 * t), (30, 60, 70 - t, 80 - t)


def clip_frames() -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 RGB frames and (T, H, W) uint8 ground-truth ids."""
    rng = np.random.default_rng(0)
    frames = np.empty((T, H, W, 3), np.uint8)
    gt = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        f = np.clip(np.asarray(GREEN, np.float64) + rng.normal(0, 6, (H, W, 3)), 0, 255)
        for k, ((y0, y1, x0, x1), c) in enumerate(zip(boxes(t), (RED, BLUE), strict=True), start=1):
            f[y0:y1, x0:x1] = c
            gt[t, y0:y1, x0:x1] = k
        frames[t] = f.astype(np.uint8)
    return frames, gt


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The clip as an mp4 written with OpenCV."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames, _ = clip_frames()
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The clip as a folder of PNG frames (lossless)."""
    d = tmp_path_factory.mktemp("frames")
    for t, f in enumerate(clip_frames()[0]):
        Image.fromarray(f).save(d / f"{t:05d}.png")
    return d


def stroke(box, obj: int) -> dict:
    """A stroke along the long axis of ``box`` (normalised by (W, H))."""
    y0, y1, x0, x1 = box
    if x1 - x0 >= y1 - y0:
        y = (y0 + y1) / 2 / H
        path = [[(x0 + 2) / W, y], [(x1 - 3) / W, y]]
    else:
        x = (x0 + x1) / 2 / W
        path = [[x, (y0 + 2) / H], [x, (y1 - 3) / H]]
    return {"path": path, "object_id": obj, "start_time": 0, "end_time": 1}


def scribble(frame: int, objects=(1, 2), background: bool = True) -> dict:
    per = [[] for _ in range(T)]
    b = boxes(frame)
    per[frame] = [stroke(b[k - 1], k) for k in objects]
    if background:
        per[frame].append({"path": [[0.05, 0.95], [0.6, 0.95], [0.6, 0.7]], "object_id": 0})
    return {"sequence": "clip", "scribbles": per}


def weights(tmp: Path, qa: bool = True, agent: bool = True) -> Path:
    """Random networks saved in the project's checkpoint layout: weights/assess_net.pt, weights/agent.pt."""
    wd = tmp / "weights"
    wd.mkdir(exist_ok=True)
    torch.manual_seed(0)
    if qa:
        net = QualityNet("resnet18")
        with torch.no_grad():   # outputs around 0.5 so that they vary inside [0, 1] after clipping
            net.fc1.weight.mul_(0.05)
            net.fc1.bias.fill_(0.5)
        torch.save({"model": net.state_dict(), "meta": net.meta()}, wd / "assess_net.pt")
    if agent:
        torch.save(QNet().state_dict(), wd / "agent.pt")
    return wd


def test_working_size_is_bounded():
    assert working_size(8, 64, 96) == (64, 96)
    assert working_size(10, 1080, 1920) == (480, 854)
    h, w = working_size(1000, 480, 854)
    assert 1000 * h * w <= 100 * 480 * 854 and abs(w / h - 854 / 480) < 0.02


def test_round_changes_masks_near_strokes(folder, tmp_path):
    s = Session.open(folder, 2, weights_dir=tmp_path / "none")
    _, gt = clip_frames()
    s.add_scribbles(scribble(0, objects=(1,)))
    before = s.masks.copy()
    iou1 = ((before[0] == 1) & (gt[0] == 1)).sum() / ((before[0] == 1) | (gt[0] == 1)).sum()
    assert iou1 > 0.7 and not (before == 2).any()
    # round 2: object 2 on frame 4 appears around its stroke; frame 0 (annotated) is untouched
    s.add_scribbles(scribble(4, objects=(2,), background=False))
    after = s.masks
    y0, y1, x0, x1 = boxes(4)[1]
    assert (after[4, y0:y1, x0:x1] == 2).mean() > 0.7 and (before[4, y0:y1, x0:x1] != 2).all()
    assert (after[4][gt[4] == 0] != 2).mean() > 0.97
    np.testing.assert_array_equal(after[0], before[0])
    assert s.probs.shape == (T, 3, H, W) and np.allclose(s.probs.sum(1), 1, atol=1e-4)


def test_video_file_and_folder_read_alike(clip, folder, tmp_path):
    avi = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for f in clip_frames()[0]:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    b = Session.open(folder, 1, weights_dir=tmp_path)
    np.testing.assert_array_equal(b.video.frames, clip_frames()[0])   # PNG frames: lossless
    for path in (clip, avi):
        a = Session.open(path, 1, weights_dir=tmp_path)
        assert a.num_frames == b.num_frames == T and a.video.full_size == (H, W)
        assert np.abs(a.video.frames.astype(int) - b.video.frames.astype(int)).mean() < 12   # lossy codecs


def test_quality_from_qa_network_one_value_per_frame(folder, tmp_path):
    wd = weights(tmp_path)
    s = Session.open(folder, 2, weights_dir=wd, method="worst", device="cpu")
    assert s.assessor is not None and "resnet18" in s.qa_status
    s.add_scribbles(scribble(0))
    q = s.quality
    assert q.shape == (T,) and np.all((q >= 0) & (q <= 1)) and np.ptp(q) > 0
    # the checkpoint's network, scored here directly, averaged over the 2 objects
    ckpt = torch.load(wd / "assess_net.pt", weights_only=True)
    net = QualityNet("resnet18")
    net.load_state_dict(ckpt["model"])
    expected = QualityAssessor(net, "cpu")(s.video.frames, s.probs).mean(axis=1)
    np.testing.assert_allclose(q, expected, atol=1e-6)


def _worst_by_hand(q: np.ndarray, annotated: list[int]) -> int:
    order = [t for t in np.argsort(q, kind="stable") if t not in annotated]
    return int(order[0]) if order else int(np.argmin(q))


def test_recommendation_follows_each_method(folder, tmp_path):
    wd = weights(tmp_path)
    s = Session.open(folder, 2, weights_dir=wd, method="ours", device="cpu", seed=5)
    s.add_scribbles(scribble(3))
    # ours: argmax of the agent's Q-values on [quality, times scribbled]
    net = QNet()
    net.load_state_dict(torch.load(wd / "agent.pt", weights_only=True))
    state = np.stack([s.quality, np.eye(T)[3]], axis=1).astype(np.float32)
    with torch.no_grad():
        expected = int(net(torch.from_numpy(state)[None])[0].argmax())
    assert s.recommendation.frame == expected and s.recommendation.method == "ours"
    assert s.recommend("worst").frame == _worst_by_hand(s.quality, [3])
    assert s.recommend("linspace").frame == 0   # T = 8 <= 8 grid frames: every frame, ascending, skip 3
    rng = np.random.default_rng(5)
    assert [s.recommend("random").frame for _ in range(4)] == [int(rng.integers(0, T)) for _ in range(4)]
    for m in ("ours", "worst", "linspace", "random"):
        assert 0 <= s.recommend(m).frame < T


def test_without_weights_names_the_fallback(folder, tmp_path):
    s = Session.open(folder, 2, weights_dir=tmp_path / "nothing", method="ours")
    assert s.assessor is None and s.agent is None
    s.add_scribbles(scribble(0))
    rec = s.recommendation
    assert s.quality is None
    assert rec.method == "linspace" and rec.requested == "ours" and rec.frame == 1
    assert "agent.pt" in rec.note and "assess_net.pt" in rec.note and "linspace" in rec.note
    assert s.recommend("worst").method == "linspace"
    # a QA network alone is enough for worst, not for ours
    wd = weights(tmp_path, agent=False)
    s2 = Session.open(folder, 2, weights_dir=wd, method="worst", device="cpu")
    s2.add_scribbles(scribble(0))
    assert s2.recommendation.method == "worst"
    assert s2.recommend("ours").method == "linspace" and "agent.pt" in s2.recommendation.note


@pytest.mark.parametrize("backend_state", ["stored", "replay"])
def test_save_reopen_next_round_equals_uninterrupted(folder, tmp_path, backend_state):
    wd = weights(tmp_path)
    kw = dict(weights_dir=wd, method="worst", device="cpu")
    a = Session.open(folder, 2, **kw)
    a.add_scribbles(scribble(0))
    a.save(tmp_path / "ws")
    if backend_state == "replay":   # as for a backend whose state cannot be stored
        meta = json.loads((tmp_path / "ws/workspace.json").read_text())
        meta["backend_state"] = "replay"
        (tmp_path / "ws/workspace.json").write_text(json.dumps(meta))
    b = Session.load(tmp_path / "ws")
    np.testing.assert_array_equal(b.masks, a.masks)
    np.testing.assert_array_equal(b.quality, a.quality)
    assert b.recommendation == a.recommendation and b.annotated == [0]
    c = Session.open(folder, 2, **kw)
    c.add_scribbles(scribble(0))
    nxt = c.recommendation.frame
    rb, rc = b.add_scribbles(scribble(nxt)), c.add_scribbles(scribble(nxt))
    np.testing.assert_array_equal(b.masks, c.masks)
    np.testing.assert_array_equal(b.probs, c.probs)
    np.testing.assert_array_equal(rb.quality, rc.quality)
    assert rb.recommendation == rc.recommendation


def test_undo_restores_previous_round_exactly(folder, tmp_path):
    s = Session.open(folder, 2, weights_dir=weights(tmp_path), method="random", device="cpu", undo_depth=1)
    s.add_scribbles(scribble(0))
    m1, p1, q1, r1 = s.masks.copy(), s.probs.copy(), s.quality.copy(), s.recommendation
    s.add_scribbles(scribble(4, objects=(2,)))
    m2, p2 = s.masks.copy(), s.probs.copy()
    s.add_scribbles(scribble(6))
    assert not np.array_equal(s.probs, p2) and not np.array_equal(p1, p2)
    s.undo()    # from the in-memory snapshot
    np.testing.assert_array_equal(s.masks, m2)
    np.testing.assert_array_equal(s.probs, p2)
    s.undo()    # beyond undo_depth: replayed
    np.testing.assert_array_equal(s.masks, m1)
    np.testing.assert_array_equal(s.probs, p1)
    np.testing.assert_array_equal(s.quality, q1)
    assert s.recommendation == r1 and s.annotated == [0]
    s.undo()
    assert s.masks is None and s.rounds == []
    # deeper undo: snapshots for 3 rounds, probabilities for the last 2 (the third undo replays)
    d = Session.open(folder, 2, weights_dir=tmp_path / "none", undo_depth=3)
    results = []
    for f in (0, 4, 6, 2):
        d.add_scribbles(scribble(f))
        results.append((d.masks.copy(), d.probs.copy()))
    for masks, probs in results[-2::-1]:
        d.undo()
        np.testing.assert_array_equal(d.masks, masks)
        np.testing.assert_array_equal(d.probs, probs)
    with pytest.raises(SessionError, match="nothing to undo"):
        s.undo()


def test_png_export_rereads_to_the_same_labels(folder, tmp_path):
    s = Session.open(folder, 2, weights_dir=tmp_path)
    s.add_scribbles(scribble(0))
    files = s.export_masks(tmp_path / "masks")
    assert [f.name for f in files] == [f"{t:05d}.png" for t in range(T)]
    for t, f in enumerate(files):
        im = Image.open(f)
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]   # DAVIS colour of object 1
        np.testing.assert_array_equal(np.array(im), s.masks[t])
    path = s.export_overlay(tmp_path / "overlay.mp4")
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == T


def test_large_video_worked_small_exported_full_size(folder, tmp_path):
    s = Session.open(folder, 2, weights_dir=tmp_path, max_side=48)
    assert s.video.work_size == (32, 48) and s.video.full_size == (H, W)
    s.add_scribbles(scribble(0))
    s.export_masks(tmp_path / "full")
    for t in range(T):
        full = np.array(Image.open(tmp_path / "full" / f"{t:05d}.png"))
        assert full.shape == (H, W)
        np.testing.assert_array_equal(full, s.full_masks(t))
        nearest = cv2.resize(s.masks[t], (W, H), interpolation=cv2.INTER_NEAREST)
        assert (full == nearest).mean() > 0.95


def test_bad_input_is_named_and_loses_nothing(folder, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(SessionError, match="broken.mp4"):
        Session.open(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionError, match="no frames"):
        Session.open(tmp_path / "empty")
    with pytest.raises(SessionError, match="no such file"):
        Session.open(tmp_path / "missing.mp4")

    s = Session.open(folder, 2, weights_dir=tmp_path)
    s.add_scribbles(scribble(0))
    masks, state = s.masks.copy(), s.backend.get_state()
    out_of_range = {"scribbles": [[] for _ in range(T)] + [[stroke(boxes(0)[0], 1)]]}
    too_many = scribble(2)
    too_many["scribbles"][2][0]["object_id"] = 3
    empty = {"scribbles": [[] for _ in range(T)]}
    no_points = scribble(2)
    no_points["scribbles"][2][0]["path"] = []
    for scr, msg in ((out_of_range, "video has 8 frames"), (too_many, "object 3.*ids 1..2"),
                     (empty, "no stroke"), (no_points, "no points")):
        with pytest.raises(SessionError, match=msg):
            s.add_scribbles(scr)
    with pytest.raises(SessionError, match="outside the video"):
        s.add_scribbles([stroke(boxes(0)[0], 1)], frame=8)
    np.testing.assert_array_equal(s.masks, masks)
    assert s.annotated == [0] and len(s.backend.get_state()["scribbles"]) == len(state["scribbles"])

    s.save(tmp_path / "ws")
    other = tmp_path / "other"
    other.mkdir()
    for t, f in enumerate(clip_frames()[0][::-1]):
        Image.fromarray(f).save(other / f"{t:05d}.png")
    with pytest.raises(SessionError, match="another video"):
        Session.load(tmp_path / "ws", video=other)
    with pytest.raises(SessionError, match="not a workspace"):
        Session.load(tmp_path)


def test_command_line_writes_masks_quality_and_frame(folder, tmp_path, capsys):
    import recommend

    wd = weights(tmp_path)
    files = []
    for i, f in enumerate((0, 5)):
        files.append(tmp_path / f"s{i}.json")
        files[-1].write_text(json.dumps(scribble(f)))
    out = tmp_path / "out"
    rc = recommend.main([str(folder), "--scribbles", *map(str, files), "--objects", "2", "--method", "worst",
                         "--out", str(out), "--weights-dir", str(wd), "--device", "cpu", "--quiet"])
    assert rc == 0
    printed = int(capsys.readouterr().out.strip())
    rec = json.loads((out / "recommendation.json").read_text())
    assert rec["frame"] == printed and rec["method"] == "worst" and rec["annotated"] == [0, 5]
    rows = (out / "quality.csv").read_text().splitlines()
    assert rows[0].startswith("frame,quality,quality_obj1,quality_obj2") and len(rows) == T + 1
    q = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert printed == _worst_by_hand(q, [0, 5])
    assert (out / "quality.png").stat().st_size > 1000 and len(list((out / "masks").glob("*.png"))) == T
    # the same two rounds through the API give the same masks
    s = Session.open(folder, 2, weights_dir=wd, device="cpu", method="worst")
    s.add_scribbles(scribble(0))
    s.add_scribbles(scribble(5))
    for t in range(T):
        np.testing.assert_array_equal(np.array(Image.open(out / "masks" / f"{t:05d}.png")), s.masks[t])

    # a bad second file: exit code 2, the message names it, the first round is kept in the workspace
    bad = tmp_path / "bad.json"
    worse = scribble(2)
    worse["scribbles"][2][0]["object_id"] = 7
    bad.write_text(json.dumps(worse))
    rc = recommend.main([str(folder), "--scribbles", str(files[0]), str(bad), "--objects", "2", "--out",
                         str(tmp_path / "out2"), "--weights-dir", str(wd), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.json" in err and "object 7" in err and "1 round(s) before it are saved" in err
    assert Session.load(tmp_path / "out2" / "workspace").annotated == [0]


def test_export_palette_is_the_davis_palette():
    from annotate.export import PALETTE
    from datasets.synthetic import davis_palette

    assert PALETTE.reshape(-1).tolist() == davis_palette()
