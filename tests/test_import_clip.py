"""The clip importer: a clip written here round-trips into a DAVIS-layout sequence; every error
names the file and the fix."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from datasets.import_clip import import_clip, main
from datasets.layout import DatasetError, check_files, resolve
from datasets.synthetic import davis_palette

T, H, W = 6, 72, 120


def _clip_ids() -> np.ndarray:
    """Object ids 3 and 7 (renumbered 1 and 2 by the importer): two moving bars."""
    ids = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        ids[t, 10:20, 10 + 3 * t: 80 + 3 * t] = 3
        ids[t, 25:68, 95 - 2 * t: 107 - 2 * t] = 7
    return ids


def _write_clip(tmp: Path, ids: np.ndarray, mask_mode: str = "P") -> tuple[Path, Path]:
    fdir, mdir = tmp / "frames", tmp / "masks"
    fdir.mkdir()
    mdir.mkdir()
    rng = np.random.default_rng(0)
    colours = np.zeros((256, 3))
    colours[0], colours[3], colours[7], colours[1], colours[2] = (50, 70, 60), (220, 50, 40), (40, 80, 230), \
        (220, 50, 40), (40, 80, 230)
    for t in range(len(ids)):
        img = np.clip(colours[ids[t]] + rng.normal(0, 6, (H, W, 3)), 0, 255).astype(np.uint8)
        # names that sort wrongly as text (frame_10 before frame_2): the importer sorts numerically
        Image.fromarray(img).save(fdir / f"frame_{t * 5}.png")
        if mask_mode == "P":
            im = Image.fromarray(ids[t], mode="P")
            im.putpalette(davis_palette())
        elif mask_mode == "L":
            im = Image.fromarray(ids[t], mode="L")
        else:  # RGB with DAVIS palette colours
            im = Image.fromarray(np.asarray(davis_palette(), np.uint8).reshape(256, 3)[ids[t]], mode="RGB")
        im.save(mdir / f"mask_{t * 5}.png")
    return fdir, mdir


@pytest.mark.parametrize("mode", ["P", "L", "RGB"])
def test_round_trip(tmp_path, mode):
    ids = _clip_ids()
    if mode == "RGB":
        ids = np.where(ids == 3, 1, np.where(ids == 7, 2, 0)).astype(np.uint8)
    fdir, mdir = _write_clip(tmp_path, ids, mode)
    root = tmp_path / "root"
    entry = import_clip(fdir, mdir, root, "my-clip", "val", scribbles=3)
    assert entry == {"name": "my-clip", "num_frames": T, "num_objects": 2, "num_scribbles": 3,
                     "image_size": [W, H], "set": "val"}
    spec = resolve(str(root))
    check_files(spec, ["my-clip"])
    expected = np.where(ids == ids.max(), 2, np.where(ids > 0, 1, 0))   # ids renumbered 1..K in order
    np.testing.assert_array_equal(spec.annotations("my-clip"), expected)
    frames = spec.frames("my-clip")
    assert frames.shape == (T, H, W, 3)
    # frame order kept numerically: object 1's bar starts 3 px further right each frame
    assert [int(np.argmax(frames[t, 15, :, 0] > 150)) for t in range(T)] == [10 + 3 * t for t in range(T)]
    used = set()
    for k in (1, 2, 3):
        data = spec.scribble("my-clip", k)
        (t,) = [t for t, s in enumerate(data["scribbles"]) if s]
        used.add(t)
        for s in data["scribbles"][t]:
            xy = (np.asarray(s["path"]) * [W, H]).astype(int).clip(0, [W - 1, H - 1])
            assert np.mean(expected[t][xy[:, 1], xy[:, 0]] == s["object_id"]) > 0.9
    assert len(used) == 3
    # a second clip joins the same root; the first is kept
    (tmp_path / "b").mkdir()
    fdir2, mdir2 = _write_clip(tmp_path / "b", _clip_ids())
    import_clip(fdir2, mdir2, root, "other", "train", scribbles=1)
    spec = resolve(str(root))
    assert sorted(spec.sequences) == ["my-clip", "other"]
    assert (root / "ImageSets/2017/train.txt").read_text() == "other\n"


def test_video_input_and_resize(tmp_path):
    fdir, mdir = _write_clip(tmp_path, _clip_ids())
    video = tmp_path / "clip.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for t in range(T):
        out.write(cv2.imread(str(fdir / f"frame_{t * 5}.png")))
    out.release()
    entry = import_clip(video, mdir, tmp_path / "root", "vid", height=36, scribbles=1)
    assert entry["image_size"] == [60, 36] and entry["num_frames"] == T


def _error(tmp_path, fdir, mdir) -> str:
    with pytest.raises(DatasetError) as exc:
        import_clip(fdir, mdir, tmp_path / "root", "bad")
    return str(exc.value)


def test_error_frame_and_mask_counts_differ(tmp_path):
    fdir, mdir = _write_clip(tmp_path, _clip_ids())
    (mdir / "mask_25.png").unlink()
    msg = _error(tmp_path, fdir, mdir)
    assert str(fdir) in msg and str(mdir) in msg and "6 frames" in msg and "5 masks" in msg
    assert "one mask per frame" in msg


def test_error_mask_size_differs_from_frames(tmp_path):
    fdir, mdir = _write_clip(tmp_path, _clip_ids())
    for p in mdir.iterdir():
        with Image.open(p) as im:
            im.resize((W // 2, H // 2), Image.NEAREST).save(p)
    msg = _error(tmp_path, fdir, mdir)
    assert "mask_0.png" in msg and f"{W // 2}x{H // 2}" in msg and f"{W}x{H}" in msg and "nearest" in msg


def test_error_one_mask_of_another_size(tmp_path):
    fdir, mdir = _write_clip(tmp_path, _clip_ids())
    with Image.open(mdir / "mask_10.png") as im:
        im.resize((W + 4, H), Image.NEAREST).save(mdir / "mask_10.png")
    msg = _error(tmp_path, fdir, mdir)
    assert "mask_10.png" in msg and "one size" in msg


def test_error_empty_masks(tmp_path):
    fdir, mdir = _write_clip(tmp_path, np.zeros((T, H, W), np.uint8))
    msg = _error(tmp_path, fdir, mdir)
    assert str(mdir) in msg and "empty" in msg and "--masks" in msg


def test_error_rgb_mask_with_unknown_colours(tmp_path):
    fdir, mdir = _write_clip(tmp_path, _clip_ids())
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[10:20, 10:80] = (250, 10, 200)       # not a DAVIS palette colour
    Image.fromarray(rgb).save(mdir / "mask_15.png")
    msg = _error(tmp_path, fdir, mdir)
    assert "mask_15.png" in msg and "RGB(250, 10, 200)" in msg and "palette" in msg and "label PNG" in msg


def test_error_missing_folder_and_cli_exit_code(tmp_path, capsys):
    msg = _error(tmp_path, tmp_path / "nope", tmp_path)
    assert str(tmp_path / "nope") in msg and "video file" in msg
    with pytest.raises(SystemExit) as exc:
        main(["--frames", str(tmp_path / "nope"), "--masks", str(tmp_path), "--root", str(tmp_path / "r"),
              "--name", "x"])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
