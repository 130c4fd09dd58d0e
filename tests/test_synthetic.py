"""The synthetic generator: determinism, DAVIS layout, robot-made initial scribbles, a real session."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.davis_compat import DavisInteractiveSession
from datasets.layout import check_files, registered, resolve
from datasets.synthetic import davis_palette, generate

TINY = dict(train=2, val=2, frames=8, height=96, width=160, seed=3, progress=False)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    return generate(root, **TINY)


def test_same_arguments_give_byte_identical_files(tiny, tmp_path):
    again = generate(tmp_path / "synthetic", **TINY)
    assert _digest(again.root) == _digest(tiny.root)
    assert len(_digest(tiny.root)) == 4 * (2 * 8 + 3) + 2 + 1  # frames, masks, scribbles; ImageSets; metadata


def test_a_sequence_does_not_depend_on_the_others(tiny, tmp_path):
    alone = generate(tmp_path / "one", **dict(TINY, train=0, val=1))
    a, b = _digest(alone.root), _digest(tiny.root)
    keys = [k for k in a if "syn-val-000" in k]
    assert len(keys) == 2 * 8 + 3
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    other_seed = generate(tmp_path / "seed4", **dict(TINY, train=0, val=1, seed=4))
    assert _digest(other_seed.root)["JPEGImages/480p/syn-val-000/00000.jpg"] != a["JPEGImages/480p/syn-val-000/00000.jpg"]


def test_layout_and_metadata(tiny):
    root = tiny.root
    assert sorted(tiny.sequences) == ["syn-train-000", "syn-train-001", "syn-val-000", "syn-val-001"]
    assert (root / "ImageSets/2017/train.txt").read_text() == "syn-train-000\nsyn-train-001\n"
    assert (root / "ImageSets/2017/val.txt").read_text() == "syn-val-000\nsyn-val-001\n"
    assert resolve(str(root)).sequences == tiny.sequences
    check_files(tiny, tiny.sequences)
    for seq, m in tiny.sequences.items():
        assert m["image_size"] == [160, 96] and m["num_frames"] == 8 and m["num_scribbles"] == 3
        assert 1 <= m["num_objects"] <= 3
        with Image.open(root / "Annotations/480p" / seq / "00000.png") as im:
            assert im.mode == "P"
            assert im.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]  # DAVIS: black, dark red, green
        ann = tiny.annotations(seq)
        assert ann.shape == (8, 96, 160)
        assert set(np.unique(ann)) <= set(range(m["num_objects"] + 1))
        assert ann.max() == m["num_objects"]
        assert tiny.frames(seq).shape == (8, 96, 160, 3)
    assert davis_palette()[3 * 255:] == [224, 224, 192]  # DAVIS' void colour


def test_initial_scribbles_cover_every_object_on_distinct_frames(tiny):
    for seq, m in tiny.sequences.items():
        ann = tiny.annotations(seq)
        frames = []
        for k in range(1, 4):
            data = tiny.scribble(seq, k)
            assert data["sequence"] == seq and len(data["scribbles"]) == 8
            used = [t for t, strokes in enumerate(data["scribbles"]) if strokes]
            assert len(used) == 1
            t = used[0]
            frames.append(t)
            strokes = data["scribbles"][t]
            assert {s["object_id"] for s in strokes} == set(range(1, m["num_objects"] + 1))
            assert [(s["start_time"], s["end_time"]) for s in strokes] == [(float(i), float(i + 1))
                                                                          for i in range(len(strokes))]
            for s in strokes:
                xy = np.asarray(s["path"]) * [160, 96]
                assert xy.shape == (1000, 2)
                x = np.clip(xy[:, 0].astype(int), 0, 159)
                y = np.clip(xy[:, 1].astype(int), 0, 95)
                # the robot scribbles on the object's skeleton: the stroke lies on the object
                assert np.mean(ann[t][y, x] == s["object_id"]) > 0.9
                assert (ann[t] == s["object_id"]).sum() >= 50
        assert len(set(frames)) == 3


def test_objects_are_elongated(tiny):
    for seq, m in tiny.sequences.items():
        ann = tiny.annotations(seq)
        for obj in range(1, m["num_objects"] + 1):
            t = int(np.argmax((ann == obj).sum((1, 2))))
            ys, xs = np.nonzero(ann[t] == obj)
            ev = np.linalg.eigvalsh(np.cov(np.stack([xs, ys])))
            assert ev[1] / max(ev[0], 1e-9) > 3.0, (seq, obj)  # axis ratio > sqrt(3): not a disc


def test_every_sequence_runs_a_real_session(tiny, tmp_path):
    seqs = list(tiny.sequences)
    masks_by_seq = {s: tiny.annotations(s) for s in seqs}
    with registered(tiny, seqs, "val") as subset:
        seen = []
        with DavisInteractiveSession(davis_root=str(tiny.root), subset=subset, max_nb_interactions=2,
                                     report_save_dir=str(tmp_path)) as sess:
            while sess.next():
                seq, scribbles, first = sess.get_scribbles(only_last=True)
                assert len(scribbles["scribbles"]) == 8
                seen.append((seq, first))
                sess.submit_masks(np.zeros((8, 96, 160), np.int64))
            report = sess.get_report()
    assert sorted(s for s, first in seen if first) == sorted(s for s in seqs for _ in range(3))
    assert len(seen) == 4 * 3 * 2
    # Empty masks: J is 1 on frames without the object and 0 on frames with it (computed by hand).
    for (seq, obj), rows in report.groupby(["sequence", "object_id"]):
        expected = float(np.mean(~(masks_by_seq[seq] == obj).any((1, 2))))
        assert np.isclose(rows["jaccard"].mean(), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="frames"):
        generate("unused", frames=2, progress=False)
    with pytest.raises(ValueError, match="objects"):
        generate("unused", objects=(0, 2), progress=False)
    assert not Path("unused").exists()


def test_scribble_json_is_compact_and_sorted_like_the_robot(tiny):
    raw = (tiny.root / "Scribbles" / "syn-val-000" / "001.json").read_text()
    assert list(json.loads(raw)) == ["scribbles", "sequence"]


def test_motion_is_davis_like():
    """Centroid motion at 854 px width: DAVIS objects typically move a few px per frame, with
    occasional bursts; the generator must not return to the 15+ px median of its first version."""
    from datasets.synthetic import sequence_statistics, summarize_statistics

    stats = [sequence_statistics(0, "val", i, 24, 120, 214) for i in range(3)]
    s = summarize_statistics(stats)
    assert 1.0 < s["disp_median"] < 10.0, s
    assert s["disp_p90"] < 40.0, s
    assert s["fully_out"] < 0.3 and s["area_median"] > 0.01, s
    # every object-frame is either visible or explained by leaving the frame or being hidden
    for st in stats:
        hidden = (st["area"] == 0)
        assert np.all((st["out"][hidden] > 0.9) | (st["occluded"][hidden] > 0.9))


def test_summary_pools_by_hand():
    from datasets.synthetic import summarize_statistics

    a = {"displacement": np.array([1.0, 3.0]), "out": np.array([[0.0, 0.5, 1.0, 0.0]]),
         "occluded": np.array([[0.0, 0.2, 0.0, 0.95]]), "area": np.array([[0.1, 0.05, 0.0, 0.0]])}
    b = {"displacement": np.array([5.0]), "out": np.zeros((1, 4)), "occluded": np.zeros((1, 4)),
         "area": np.array([[0.2, 0.2, 0.2, 0.2]])}
    s = summarize_statistics([a, b])
    assert s["disp_median"] == 3.0 and s["disp_max"] == 5.0
    assert s["partly_out"] == 1 / 8 and s["fully_out"] == 1 / 8
    assert s["occluded"] == 2 / 8 and s["fully_occluded"] == 1 / 8
    assert s["area_median"] == 0.2
