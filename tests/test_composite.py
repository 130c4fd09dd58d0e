"""The composite (real-imagery) generator: exact ground truth, determinism, layout, a real session."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from datasets import real_assets
from datasets.composite import Layer, composite_layers, generate
from datasets.davis_compat import DavisInteractiveSession
from datasets.layout import check_files, registered, resolve

TINY = dict(train=1, val=2, frames=8, height=120, width=214, seed=3, progress=False)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("comp") / "composite", **TINY)


def test_composited_masks_are_the_pasted_masks_in_occlusion_order():
    """Two known masks at known offsets, the second in front: ids and colours worked out by hand."""
    bg = np.full((6, 8, 3), 10.0)
    a = np.zeros((3, 4), bool)
    a[:, 1:] = True                       # object 1: columns 1..3 of a 3x4 box at (x0, y0) = (1, 1)
    b = np.ones((2, 3), bool)             # object 2: a full 2x3 box at (3, 2), partly over object 1
    la = Layer(1, 1, 1, np.where(a[..., None], 100.0, 0.0).repeat(3, 2), a.astype(np.float32), a)
    half = np.full((2, 3), 0.5, np.float32)   # drawn half-transparent, but its support is the whole box
    lb = Layer(2, 3, 2, np.full((2, 3, 3), 0.5 * 200.0), half, b)
    img, ids = composite_layers(bg, [la, lb])
    expected = np.zeros((6, 8), np.uint8)
    expected[1:4, 2:5] = 1
    expected[2:4, 3:6] = 2
    np.testing.assert_array_equal(ids, expected)
    assert img[1, 2, 0] == 100.0                       # object 1 alone
    assert img[2, 3, 0] == 100.0 * 0.5 + 100.0          # object 2 half over object 1
    assert img[2, 5, 0] == 10.0 * 0.5 + 100.0           # object 2 half over the background
    assert img[0, 0, 0] == 10.0 and img[1, 1, 0] == 10.0  # background (object 1's empty column)


def test_a_layer_partly_outside_the_frame_is_clipped():
    bg = np.zeros((4, 4, 3))
    m = np.ones((3, 3), bool)
    _, ids = composite_layers(bg, [Layer(1, -2, 2, np.ones((3, 3, 3)), m.astype(np.float32), m)])
    expected = np.zeros((4, 4), np.uint8)
    expected[2:4, 0:1] = 1
    np.testing.assert_array_equal(ids, expected)


def test_assets_are_real_imagery_from_the_installed_packages():
    shots = real_assets.footage_shots()
    assert len(shots) == 5 and all(s.shape[1:] == (272, 640, 3) and len(s) >= 20 for s in shots)
    insts = real_assets.object_instances()
    assert len(insts) == 15
    for inst in insts:
        assert inst.rgb.shape[:2] == inst.mask.shape and inst.mask.sum() >= real_assets.MIN_INSTANCE_AREA


def test_same_arguments_give_byte_identical_files(tiny, tmp_path):
    again = generate(tmp_path / "composite", **TINY)
    assert _digest(again.root) == _digest(tiny.root)
    assert len(_digest(tiny.root)) == 3 * (2 * 8 + 3) + 2 + 1


def test_layout_check_files_and_scribbles(tiny):
    assert sorted(tiny.sequences) == ["comp-train-000", "comp-val-000", "comp-val-001"]
    assert resolve(str(tiny.root)).sequences == tiny.sequences
    assert resolve("composite", tiny.root.parent).sequences == tiny.sequences
    check_files(tiny, tiny.sequences)
    for seq, m in tiny.sequences.items():
        ann = tiny.annotations(seq)
        assert ann.shape == (8, 120, 214) and ann.max() == m["num_objects"] and 1 <= m["num_objects"] <= 3
        for k in range(1, 4):
            data = tiny.scribble(seq, k)
            (t,) = [t for t, s in enumerate(data["scribbles"]) if s]
            assert {s["object_id"] for s in data["scribbles"][t]} == set(range(1, m["num_objects"] + 1))


def test_every_sequence_runs_a_real_session(tiny, tmp_path):
    seqs = list(tiny.sequences)
    gt = {s: tiny.annotations(s) for s in seqs}
    with registered(tiny, seqs, "val") as subset:
        n = 0
        with DavisInteractiveSession(davis_root=str(tiny.root), subset=subset, max_nb_interactions=1,
                                     report_save_dir=str(tmp_path)) as sess:
            while sess.next():
                seq, _, _ = sess.get_scribbles(only_last=True)
                sess.submit_masks(gt[seq].astype(np.int64))   # the ground truth scores J = 1
                n += 1
            report = sess.get_report()
    assert n == 3 * 3
    assert np.allclose(report["jaccard"], 1.0)
