"""prepare_ytbvos on a miniature YouTube-VOS tree written here; summary of the result."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.davis_compat import DavisInteractiveSession
from datasets.layout import DatasetError, check_files, registered, resolve
from datasets.prepare_ytbvos import prepare
from datasets.summary import main as summary_main
from datasets.summary import summary_lines

REPO = Path(__file__).resolve().parents[1]
H, W = 48, 64
STEMS = [f"{5 * i:05d}" for i in range(8)]  # 00000, 00005, ..., 00035


def _bar(t: int, row: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[row:row + 6, 4 + 2 * t:40 + 2 * t] = True  # 6 x 36 bar moving right
    return m


def _write_seq(train: Path, seq: str, ids: dict[int, tuple[int, int]], extra_jpgs: tuple[str, ...] = ()) -> None:
    """ids: {object id: (first frame where present, row)}."""
    (train / "JPEGImages" / seq).mkdir(parents=True)
    (train / "Annotations" / seq).mkdir(parents=True)
    for t, stem in enumerate(STEMS):
        img = np.full((H, W, 3), 40 + 10 * t, np.uint8)
        ann = np.zeros((H, W), np.uint8)
        for oid, (first, row) in ids.items():
            if t >= first:
                ann[_bar(t, row)] = oid
                img[_bar(t, row)] = (200, 30 * oid % 256, 90)
        Image.fromarray(img).save(train / "JPEGImages" / seq / f"{stem}.jpg", quality=95)
        png = Image.fromarray(ann)
        png.putpalette([0, 0, 0] + [255, 0, 0] * 255)  # not the DAVIS palette
        png.save(train / "Annotations" / seq / f"{stem}.png")
    for stem in extra_jpgs:  # a frame without annotation (as in train_all_frames)
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(train / "JPEGImages" / seq / f"{stem}.jpg")


def _stroke(t: int, row: int, oid: int) -> dict:
    y = (row + 3) / H
    return {"path": [[(8 + 2 * t) / W, y], [(36 + 2 * t) / W, y]], "object_id": oid, "start_time": 0.0, "end_time": 1.0}


def _write_scribble(path: Path, seq: str, frame: int, strokes: list[dict]) -> None:
    per_frame = [[] for _ in STEMS]
    per_frame[frame] = strokes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scribbles": per_frame, "sequence": seq}))


@pytest.fixture()
def source(tmp_path):
    src, scb = tmp_path / "youtube_vos", tmp_path / "scribbles"
    train = src / "train"
    _write_seq(train, "aaa111", {2: (0, 5), 7: (3, 30)})          # ids 2, 7 (7 appears at frame 3)
    _write_seq(train, "bbb222", {1: (0, 10)}, extra_jpgs=("00001", "00002"))
    _write_seq(train, "ccc333", {1: (0, 10)})                      # not in the scribble archive
    _write_scribble(scb / "aaa111" / "001.json", "aaa111", 4, [_stroke(4, 5, 2), _stroke(4, 30, 7)])
    _write_scribble(scb / "aaa111" / "002.json", "aaa111", 6, [_stroke(6, 30, 7), _stroke(6, 5, 2)])
    _write_scribble(scb / "bbb222" / "001.json", "bbb222", 0, [_stroke(0, 10, 1)])
    return src, scb


def test_converts_a_miniature_tree_a_session_accepts(source, tmp_path):
    src, scb = source
    dst = tmp_path / "Scribble_Youtube_VOS"
    spec = prepare(src, scb, dst, progress=False)
    assert sorted(spec.sequences) == ["aaa111", "bbb222"]
    assert spec.sequences["aaa111"] == {"name": "aaa111", "num_frames": 8, "num_objects": 2, "num_scribbles": 2,
                                        "image_size": [64, 48], "set": "val"}
    # unannotated JPEGs 00001, 00002 are dropped: frames matched by name
    assert spec.sequences["bbb222"]["num_frames"] == 8 and spec.sequences["bbb222"]["num_objects"] == 1
    assert not (dst / "JPEGImages/480p/ccc333").exists()
    assert (dst / "ImageSets/2017/val.txt").read_text() == "aaa111\nbbb222\n"
    # frames copied byte for byte and renumbered; 00005 becomes 00001
    assert (dst / "JPEGImages/480p/aaa111/00001.jpg").read_bytes() == \
        (src / "train/JPEGImages/aaa111/00005.jpg").read_bytes()
    assert sorted(p.name for p in (dst / "JPEGImages/480p/bbb222").iterdir()) == [f"{i:05d}.jpg" for i in range(8)]
    # ids 2, 7 -> 1, 2 in the masks and in the scribbles
    ann = spec.annotations("aaa111")
    assert ann.shape == (8, H, W)
    assert np.array_equal(ann[2], _bar(2, 5).astype(np.uint8))            # object 7 not there yet
    assert np.array_equal(ann[5], _bar(5, 5) * 1 + _bar(5, 30) * 2)
    with Image.open(dst / "Annotations/480p/aaa111/00000.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]    # DAVIS palette
    s1, s2 = spec.scribble("aaa111", 1), spec.scribble("aaa111", 2)
    assert [s["object_id"] for s in s1["scribbles"][4]] == [1, 2]
    assert [s["object_id"] for s in s2["scribbles"][6]] == [2, 1]
    assert s1["scribbles"][4][0]["path"] == _stroke(4, 5, 2)["path"]
    assert resolve("ytbvos", tmp_path).sequences == spec.sequences
    check_files(spec, spec.sequences)

    seqs = list(spec.sequences)
    with registered(spec, seqs, "val") as subset:
        samples = []
        with DavisInteractiveSession(davis_root=str(dst), subset=subset, max_nb_interactions=2,
                                     report_save_dir=str(tmp_path / "report")) as sess:
            while sess.next():
                seq, scribbles, first = sess.get_scribbles(only_last=True)
                samples.append((seq, first))
                sess.submit_masks(spec.annotations(seq).astype(np.int64))  # perfect masks
            summary = sess.get_global_summary()
    assert sorted(samples) == sorted([("aaa111", True), ("aaa111", False)] * 2 + [("bbb222", True), ("bbb222", False)])
    assert np.allclose(summary["curve"]["J_AND_F"][1:], 1.0)

    lines = summary_lines(spec)
    assert len(lines) == 4
    assert lines[1].split() == ["aaa111", "val", "8", "2", "2", "64x48"]
    assert lines[-1].startswith("2 sequences, 16 frames, 3 objects")


def test_runs_as_a_script_and_as_a_module(source, tmp_path, capsys):
    src, scb = source
    out = subprocess.run([sys.executable, "datasets/prepare_ytbvos.py", "--src", str(src / "train"), "--scb", str(scb),
                          "--dst", str(tmp_path / "out"), "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out/metadata.json").read_text())["sequences"]["aaa111"]["image_size"] == [64, 48]
    out = subprocess.run([sys.executable, "-m", "datasets.prepare_ytbvos", "--src", str(tmp_path / "nowhere"),
                          "--scb", str(scb), "--dst", str(tmp_path / "out2")], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert f"{tmp_path / 'nowhere'} does not exist" in out.stderr and "train/JPEGImages" in out.stderr
    assert summary_main([str(tmp_path / "out")]) == 0
    assert "aaa111" in capsys.readouterr().out


def test_missing_or_partial_source_is_named(source, tmp_path):
    src, scb = source
    with pytest.raises(DatasetError, match="does not exist"):
        prepare(tmp_path / "nowhere", scb, tmp_path / "o1", progress=False)
    with pytest.raises(DatasetError, match="Annotations"):
        prepare(src / "train" / "JPEGImages", scb, tmp_path / "o2", progress=False)
    _write_scribble(scb / "zzz999" / "001.json", "zzz999", 0, [])
    with pytest.raises(DatasetError, match="zzz999"):
        prepare(src, scb, tmp_path / "o3", progress=False)
    (scb / "zzz999" / "001.json").unlink()
    (src / "train/JPEGImages/aaa111/00010.jpg").unlink()
    with pytest.raises(DatasetError, match=r"aaa111/00010\.png has no frame"):
        prepare(src, scb, tmp_path / "o4", progress=False)
    assert not (tmp_path / "o4" / "metadata.json").exists()


def test_scribble_with_an_unknown_object_or_wrong_length_is_an_error(source, tmp_path):
    src, scb = source
    _write_scribble(scb / "bbb222" / "001.json", "bbb222", 0, [_stroke(0, 10, 5)])
    with pytest.raises(DatasetError, match="object 5"):
        prepare(src, scb, tmp_path / "o", progress=False)
    (scb / "bbb222" / "001.json").write_text(json.dumps({"scribbles": [[]] * 10, "sequence": "bbb222"}))
    with pytest.raises(DatasetError, match="has 10 frames but bbb222 has 8"):
        prepare(src, scb, tmp_path / "o", progress=False)
