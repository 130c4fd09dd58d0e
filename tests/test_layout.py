"""datasets.layout on a hand-written DAVIS-layout tree: inferred metadata, file checks, registration."""
from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
from PIL import Image
from six.moves import urllib as six_urllib

from datasets.davis_compat import Davis
from datasets.layout import DatasetError, check_files, infer_metadata, registered, resolve, write_metadata

H, W = 24, 32
SEQS = {"s1": ("train", 5, (1, 2), 2), "s2": ("val", 3, (1,), 1)}  # set, frames, object ids, scribble files


@pytest.fixture()
def root(tmp_path):
    r = tmp_path / "tiny"
    for seq, (_split, T, ids, n_scb) in SEQS.items():
        (r / "JPEGImages/480p" / seq).mkdir(parents=True)
        (r / "Annotations/480p" / seq).mkdir(parents=True)
        (r / "Scribbles" / seq).mkdir(parents=True)
        for t in range(T):
            ann = np.zeros((H, W), np.uint8)
            for k, oid in enumerate(ids):
                ann[2 + 8 * k:6 + 8 * k, 2:30] = oid
            Image.fromarray(ann).save(r / "Annotations/480p" / seq / f"{t:05d}.png")
            Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(r / "JPEGImages/480p" / seq / f"{t:05d}.jpg")
        for k in range(1, n_scb + 1):
            per_frame = [[] for _ in range(T)]
            per_frame[0] = [{"path": [[0.1, 4 / H], [0.9, 4 / H]], "object_id": 1, "start_time": 0.0, "end_time": 1.0}]
            (r / "Scribbles" / seq / f"{k:03d}.json").write_text(json.dumps({"scribbles": per_frame, "sequence": seq}))
    (r / "ImageSets/2017").mkdir(parents=True)
    (r / "ImageSets/2017/train.txt").write_text("s1\n")
    (r / "ImageSets/2017/val.txt").write_text("s2\n")
    return r


@pytest.fixture()
def no_network(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError(f"davisinteractive tried to download {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlretrieve", fail)
    monkeypatch.setattr(six_urllib.request, "urlretrieve", fail, raising=False)


def test_infer_metadata_without_metadata_json(root):
    meta = infer_metadata(root)
    assert meta == {
        "s1": {"name": "s1", "num_frames": 5, "num_objects": 2, "num_scribbles": 2, "image_size": [32, 24], "set": "train"},
        "s2": {"name": "s2", "num_frames": 3, "num_objects": 1, "num_scribbles": 1, "image_size": [32, 24], "set": "val"},
    }
    spec = resolve(str(root))
    assert spec.name == "tiny" and spec.sequences == meta and not spec.builtin_davis
    assert spec.subset("train") == ["s1"] and spec.subset("trainval") == ["s1", "s2"]


def test_missing_annotation_raises_naming_the_path_without_network(root, no_network):
    write_metadata(root, infer_metadata(root))
    spec = resolve(str(root))
    missing = root / "Annotations/480p/s1/00003.png"
    missing.unlink()
    before = (Davis.dataset, Davis.sets)
    with pytest.raises(DatasetError, match=re.escape(str(missing))):
        with registered(spec, ["s1", "s2"], "val"):
            pytest.fail("entered the context despite a missing file")
    assert (Davis.dataset, Davis.sets) == before and Davis.dataset is before[0]


def test_missing_scribble_file_is_named(root, no_network):
    spec = resolve(str(root))
    (root / "Scribbles/s1/002.json").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(root / "Scribbles/s1/002.json"))):
        check_files(spec, ["s1"])


def test_package_tables_are_restored(root, no_network):
    spec = resolve(str(root))
    old_dataset, old_sets = Davis.dataset, Davis.sets
    assert "s1" not in old_dataset
    with registered(spec, ["s1", "s2"], "val") as subset:
        assert subset == "val"
        assert Davis.sets["val"] == ["s1", "s2"] and Davis.sets["train"] == []
        assert Davis.dataset["s1"]["num_frames"] == 5 and Davis.dataset["s2"]["image_size"] == [32, 24]
    assert Davis.dataset is old_dataset and Davis.sets is old_sets and "s1" not in Davis.dataset
    with pytest.raises(KeyError):
        with registered(spec, ["s2"], "train"):
            assert Davis.sets["train"] == ["s2"]
            raise KeyError("inside")
    assert Davis.dataset is old_dataset and Davis.sets is old_sets


def test_check_files_catches_a_wrong_size(root):
    meta = infer_metadata(root)
    meta["s2"]["image_size"] = [64, 48]
    write_metadata(root, meta)
    with pytest.raises(DatasetError, match=r"00000.png is 32x24 but the metadata says image_size \[64, 48\]"):
        check_files(resolve(str(root)), ["s2"])
