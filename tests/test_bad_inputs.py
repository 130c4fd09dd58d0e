"""The bad-input battery: every case of issue 17 gives the named error with the file's path and the fix,
and leaves earlier results untouched. Each test writes its own tiny data."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.checkpoint import CheckpointError, export, load
from core.identity import IdentityMismatch, check_identity, file_ref
from datasets.layout import DatasetError, check_files, infer_metadata, resolve
from datasets.validate import read_label_png, read_scribble_file
from tests.conftest import write_tiny_davis

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def data(tmp_path, tiny_davis):
    """A private copy of the tiny DAVIS-layout dataset (two val, one train sequence; 6 frames, 2 objects)."""
    root = tmp_path / "tiny"
    shutil.copytree(tiny_davis.root, root)
    return resolve(str(root))


def ann(spec, seq="bars-a", t=0) -> Path:
    return spec.root / "Annotations/480p" / seq / f"{t:05d}.png"


def scribble(spec, seq="bars-a", k=1) -> Path:
    return spec.root / "Scribbles" / seq / f"{k:03d}.json"


def check(spec, seq="bars-a"):
    check_files(resolve(str(spec.root)), [seq])


# -- annotations ------------------------------------------------------------------------------------
def test_rgb_annotation_is_named_with_the_fix(data):
    p = ann(data, t=3)                               # not frame 0: every frame is checked
    ids = np.asarray(Image.open(p))
    Image.fromarray(np.stack([ids * 100] * 3, axis=-1).astype(np.uint8), "RGB").save(p)
    with pytest.raises(DatasetError, match=rf"{p}.* RGB image, not a label map.*convert it to a label PNG"):
        check(data)


def test_rgba_annotation(data):
    p = ann(data, t=5)
    ids = np.asarray(Image.open(p))
    Image.fromarray(np.stack([ids] * 4, axis=-1).astype(np.uint8), "RGBA").save(p)
    with pytest.raises(DatasetError, match=rf"{p}.* RGBA image.*label PNG"):
        check(data)


def test_16bit_ids_above_255_are_refused_not_wrapped(tmp_path):
    p = tmp_path / "00000.png"
    a = np.zeros((8, 8), np.uint16)
    a[2:4, 2:6] = 300                                # would wrap to 44 in uint8
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I")
    with pytest.raises(DatasetError, match=rf"{p} is a 16-bit label PNG with object id 300 > 255.*wrap to 44.*renumber"):
        read_label_png(p)
    a[2:4, 2:6] = 2                                  # small ids in a 16-bit file are fine
    Image.fromarray(a).save(p)
    assert read_label_png(p).dtype == np.uint8 and read_label_png(p).max() == 2


def test_mixed_annotation_sizes(data):
    p = ann(data, t=2)
    Image.fromarray(np.zeros((40, 70), np.uint8), "L").save(p)
    with pytest.raises(DatasetError, match=rf"mixed sizes: {p} is 70x40 but 00000.png is 80x48"):
        check(data)


def test_jpeg_size_differs_from_png(data):
    j = data.root / "JPEGImages/480p/bars-a/00004.jpg"
    Image.fromarray(np.zeros((50, 80, 3), np.uint8)).save(j)
    with pytest.raises(DatasetError, match=rf"frame {j} is 80x50 but its annotation .*00004.png is 80x48.*same size"):
        check(data)


def _set_meta(spec, seq, **kw):
    meta = json.loads((spec.root / "metadata.json").read_text())
    meta["sequences"][seq].update(kw)
    (spec.root / "metadata.json").write_text(json.dumps(meta))


def test_more_objects_in_metadata_than_in_the_masks(data):
    _set_meta(data, "bars-a", num_objects=3)
    d = data.root / "Annotations/480p/bars-a"
    with pytest.raises(DatasetError, match=rf"{d}: the metadata says 3 objects but ids \[3\] are not in the masks"):
        check(data)


def test_id_gap_in_the_masks(data):
    for t in range(6):                               # object 1 becomes 3: ids {2, 3}, metadata 3 -> 1 never appears
        p = ann(data, t=t)
        a = np.asarray(Image.open(p)).copy()
        a[a == 1] = 3
        Image.fromarray(a, "L").save(p)
    _set_meta(data, "bars-a", num_objects=3)
    with pytest.raises(DatasetError, match=r"ids \[1\] never appear in any frame.*renumber the ids 1..K"):
        check(data)


def test_id_above_the_metadata(data):
    _set_meta(data, "bars-a", num_objects=1)
    for k in (1, 2, 3):                              # scribbles of object 1 only, so the masks are what is wrong
        p = scribble(data, k=k)
        d = json.loads(p.read_text())
        d["scribbles"] = [[s for s in f if s["object_id"] <= 1] for f in d["scribbles"]]
        p.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match=r"bars-a holds object ids \[2\] but the metadata says 1 objects"):
        check(data)


# -- scribbles --------------------------------------------------------------------------------------
def test_malformed_scribble_json(data):
    p = scribble(data, k=2)
    p.write_text('{"scribbles": [[], ')
    with pytest.raises(DatasetError, match=rf"scribble file {p} is not valid JSON.*line 1"):
        check(data)
    with pytest.raises(DatasetError, match="not valid JSON"):     # the session's own read too
        data.scribble("bars-a", 2)


def test_scribble_list_shorter_than_the_video(data):
    p = scribble(data)
    d = json.loads(p.read_text())
    d["scribbles"] = d["scribbles"][:4]
    p.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match=rf"{p} has 4 per-frame entries but the video has 6 frames"):
        check(data)


def test_stroke_for_an_object_above_k(data):
    p = scribble(data)
    d = json.loads(p.read_text())
    d["scribbles"][1].append({"path": [[0.1, 0.1], [0.2, 0.2]], "object_id": 5, "start_time": 0, "end_time": 1})
    p.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match=rf"{p}: a stroke on frame 1 is for object 5 but the sequence has 2"):
        check(data)


def test_scribble_without_scribbles_list(tmp_path):
    p = tmp_path / "001.json"
    p.write_text(json.dumps({"sequence": "x"}))
    with pytest.raises(DatasetError, match=rf"{p} has no 'scribbles' list"):
        read_scribble_file(p, 3, 1)


# -- datasets ---------------------------------------------------------------------------------------
def test_no_imagesets_is_an_error_not_everything_val(data):
    (data.root / "metadata.json").unlink()
    shutil.rmtree(data.root / "ImageSets")
    with pytest.raises(DatasetError, match=r"no .*ImageSets/2017/train.txt or val.txt.*write them"):
        infer_metadata(data.root)


def test_sequence_in_no_imageset(data):
    (data.root / "metadata.json").unlink()
    (data.root / "ImageSets/2017/val.txt").write_text("bars-a\n")
    with pytest.raises(DatasetError, match="bars-b of .* are in neither"):
        infer_metadata(data.root)


def test_partial_davis_refused_unless_sequences_named(tmp_path):
    from datasets.davis_compat import Davis

    names = sorted(k for k, v in Davis.dataset.items() if v.get("set") == "val")[:2]
    root = tmp_path / "DAVIS"
    for n in names:
        (root / "Annotations/480p" / n).mkdir(parents=True)
    spec = resolve("davis", tmp_path)
    with pytest.raises(DatasetError, match=r"incomplete DAVIS: \d+ of the \d+ sequences of split 'val' are missing.*"
                                           r"sequences=\[...\]"):
        spec.subset("val")
    assert spec.subset("val", names) == names


# -- checkpoints ------------------------------------------------------------------------------------
def test_truncated_checkpoint_names_the_file(tmp_path):
    p = tmp_path / "agent.pt"
    from agent.qnet import QNet, load_agent

    torch.save(QNet().state_dict(), p)
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"{p} is truncated or not a torch checkpoint.*expected the agent's Q-net"):
        load_agent(p)


def test_qa_checkpoint_without_fc1(tmp_path):
    from agent.quality import QualityNet, load_quality_net

    state = QualityNet("resnet18").state_dict()
    del state["fc1.weight"]
    p = tmp_path / "assess_net.pt"
    torch.save(state, p)
    with pytest.raises(CheckpointError, match=rf"{p} has no 2-D fc1.weight, so it is not a QA network"):
        load_quality_net(p)


def test_pickled_objects_refused_by_the_safe_loader(tmp_path):
    p = tmp_path / "w.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "args": argparse_namespace()}, p)
    with pytest.raises(CheckpointError, match=rf"{p} holds Python objects that the safe loader .* refuses"):
        load(p, expected="a state dict")


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=1)


def test_manet_partial_match_is_an_error():
    from VOS.manet import merge_manet_state

    own = {"feature.w": torch.zeros(2), "head.w": torch.zeros(3), "bn.num_batches_tracked": torch.zeros(())}
    merged = merge_manet_state(own, {"feature.w": torch.ones(2), "head.w": torch.ones(3), "extra": torch.ones(1)}, "x")
    assert torch.equal(merged["head.w"], torch.ones(3)) and "extra" not in merged
    with pytest.raises(CheckpointError, match=r"m.pth only partly matches MANet's network: 1 of the network's 3 "
                                              r"entries are not in it \(e.g. head.w\)"):
        merge_manet_state(own, {"feature.w": torch.ones(2)}, "m.pth")


def test_published_weights_never_overwritten(tmp_path):
    p = tmp_path / "assess_net.pt"
    p.write_bytes(b"published")
    with pytest.raises(CheckpointError, match=rf"{p} exists and was not written by this training run.*published"):
        export({"a": torch.zeros(1)}, p, owner={"run": 1}, fix="use weights_dir=...")
    assert p.read_bytes() == b"published"
    q = tmp_path / "mine.pt"
    export({"a": torch.zeros(1)}, q, owner={"run": 1}, fix="")
    export({"a": torch.ones(1)}, q, owner={"run": 1}, fix="")       # the same run may overwrite its export
    with pytest.raises(CheckpointError, match="exported by another training run"):
        export({"a": torch.ones(1)}, q, owner={"run": 2}, fix="")


def test_quality_training_never_resumes_from_or_overwrites_published_weights(tmp_path):
    """quality_assessment's checkpoint lives in train_dir/quality/: a bare state dict at weights/assess_net.pt
    (the published file) is neither taken for a checkpoint nor overwritten."""
    from agent.qa_data import train_quality
    from agent.quality import QualityNet

    pub = tmp_path / "weights/assess_net.pt"
    pub.parent.mkdir()
    torch.save(QualityNet("resnet18").state_dict(), pub)
    before = pub.read_bytes()

    class Empty(torch.utils.data.Dataset):     # two 64-px crops: enough for one epoch
        targets = np.full(2, 0.5, np.float32)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(3, 64, 64), torch.zeros(1, 64, 64), torch.tensor(0.5)

        def set_epoch(self, e):
            pass

    with pytest.raises(CheckpointError, match="was not written by this training run"):
        train_quality(QualityNet("resnet18"), Empty(), None, epochs=1, ckpt_path=tmp_path / "train/quality/checkpoint.pt",
                      export_path=pub, owner={"x": 1}, progress=False)
    assert pub.read_bytes() == before
    with pytest.raises(CheckpointError, match="not a QA training checkpoint"):
        train_quality(QualityNet("resnet18"), Empty(), None, epochs=1, ckpt_path=pub, progress=False)


# -- identity ---------------------------------------------------------------------------------------
def test_changed_weights_refused_by_sha256(tmp_path):
    w = tmp_path / "agent.pt"
    w.write_bytes(b"one")
    rec, out = tmp_path / "run.json", tmp_path / "samples"
    check_identity(rec, {"seed": 0, "agent": file_ref(w)}, has_outputs=False, what=str(out), fix="new results_dir")
    w.write_bytes(b"two")
    with pytest.raises(IdentityMismatch, match=rf"agent: {w} \(sha256 .*\) there, {w} \(sha256 .*\) now.*new results_dir"):
        check_identity(rec, {"seed": 0, "agent": file_ref(w)}, has_outputs=True, what=str(out), fix="new results_dir")


def test_evaluate_refuses_a_retrained_agent_and_keeps_old_results(data, tmp_path):
    from agent.qnet import QNet
    from agent.recommender import AgentSelector
    from interaction.evaluate import evaluate
    from interaction.results import ResultsMismatch
    from tests.helpers import ScribbleFillBackend

    torch.manual_seed(0)
    w = tmp_path / "agent.pt"
    torch.save(QNet().state_dict(), w)
    kw = dict(setting="oracle", rounds=2, seed=0, min_nb_nodes=4, progress=False, sequences=["bars-a"])
    out = tmp_path / "res"
    evaluate(data, "val", ScribbleFillBackend(), AgentSelector.from_weights(w), out, **kw)
    before = {p.name: p.read_bytes() for p in (out / "samples").iterdir()}
    torch.manual_seed(1)
    torch.save(QNet().state_dict(), w)               # retrained agent.pt, same path
    with pytest.raises(ResultsMismatch, match=rf"selector.*{w}.*there.*now.*another results_dir"):
        evaluate(data, "val", ScribbleFillBackend(), AgentSelector.from_weights(w), out, **kw)
    assert {p.name: p.read_bytes() for p in (out / "samples").iterdir()} == before


def test_pretrain_bound_to_reward_csv(tmp_path):
    from agent.training import check_identity as check_train

    reward = tmp_path / "reward.csv"
    reward.write_text("a\n1\n")
    out = tmp_path / "pretrain.csv"
    check_train(out, {"seed": 1, "reward_csv": file_ref(reward)})
    out.write_text("rows\n")
    reward.write_text("a\n2\n")
    with pytest.raises(IdentityMismatch, match=rf"reward_csv: {reward} .* there, .* now.*another train_dir"):
        check_train(out, {"seed": 1, "reward_csv": file_ref(reward)})
    assert out.read_text() == "rows\n"


# -- loop ---------------------------------------------------------------------------------------------
def test_selector_out_of_range_is_an_error(data):
    from interaction.loop import run_episodes
    from tests.helpers import ScribbleFillBackend

    class Bad:
        name, needs_quality = "bad", False

        def __call__(self, ctx):
            return ctx.num_frames                   # one past the end

    with pytest.raises(ValueError, match=r"selector 'bad' chose frame 6 for bars-a#1 after round 1.*0..5"):
        run_episodes(data, [("bars-a", 1)], "val", ScribbleFillBackend(), Bad(), rounds=2, progress=False)


def test_nan_quality_is_never_the_worst_frame(data):
    from agent.selection import WorstSelector
    from interaction.loop import run_episodes
    from tests.helpers import ScribbleFillBackend

    def qa(frames, probs):
        q = np.full((len(frames), probs.shape[1] - 1), 0.5, np.float32)
        q[3] = np.nan
        return q

    qa.source = "weights/broken_assess_net.pt"
    with pytest.raises(ValueError, match=r"quality network \(weights/broken_assess_net.pt\) predicted NaN.*frames \[3\]"):
        run_episodes(data, [("bars-a", 1)], "val", ScribbleFillBackend(), WorstSelector(), rounds=2, setting="wild",
                     quality_fn=qa, progress=False)


def test_agent_clamp_is_logged_and_recorded(caplog):
    from agent.recommender import AgentSelector

    class Wide(torch.nn.Module):
        def forward(self, s):                       # Q-values for one frame more than the video has
            q = torch.zeros(s.shape[0], s.shape[1] + 1)
            q[:, -1] = 1.0
            return q

    class Ctx:
        num_frames, quality, counts = 4, np.zeros(4), np.zeros(4)

    sel = AgentSelector(Wide())
    with caplog.at_level("WARNING"):
        assert sel(Ctx()) == 3
    assert sel.clamped == [(4, 4)] and "clamped to 3" in caplog.text


# -- records --------------------------------------------------------------------------------------
def test_partial_episode_dropped_on_open(tmp_path):
    from agent.records import append_rows, open_records, read_records

    def rows(seq, n):
        return [{"sequence": seq, "scribble_iter": 1, "n_interaction": i + 1, "n_interaction_next": i + 2, "action": i,
                 "reward_step": 1.0, "reward_done": 0.0, "done": i == n - 1, "state_iou": [0.5, 0.6],
                 "next_state_iou": [0.6, 0.7], "annotated_frames": [1, 0], "next_annotated_frames": [1, 1]}
                for i in range(n)]

    p = tmp_path / "reward.csv"
    append_rows(p, rows("a", 3))
    full = p.read_bytes()
    append_rows(p, rows("b", 3))
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:-1]) + lines[-1][:10])   # killed inside episode b: 2 whole lines and a half
    assert len(read_records(p)) == 3                       # readers never count the partial episode
    assert len(open_records(p)) == 3 and p.read_bytes() == full   # and the writer cuts it from the file


# -- scripts ----------------------------------------------------------------------------------------
def test_script_error_is_one_line_exit_2_and_keeps_results(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "keep.txt").write_text("x")
    cmd = [sys.executable, str(ROOT / "eval_agent.py"), "with", f"dataset={tmp_path / 'nope'}", f"results_dir={res}"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [f"eval_agent.py: error: dataset '{tmp_path / 'nope'}' is neither a known name "
                     f"(davis, ytbvos, synthetic, composite) nor a folder  (add --debug for the traceback)"], p.stderr
    assert (res / "keep.txt").read_text() == "x"
    p = subprocess.run(cmd[:2] + ["--debug"] + cmd[2:], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" in p.stderr and "DatasetError" in p.stderr


def test_tiny_davis_itself_is_valid(tmp_path):
    spec = write_tiny_davis(tmp_path / "ok", {"s": "val"})
    check_files(spec, ["s"])


def test_select_worst_refuses_nan():
    from agent.selection import select_worst

    assert select_worst(np.array([0.5, 0.2, 0.9]), []) == 1
    with pytest.raises(ValueError, match=r"quality has NaN at frames \[1\]"):
        select_worst(np.array([0.5, np.nan, 0.9]), [])


def test_kill_between_checkpoint_and_export_never_leaves_agent_pt_stale(data, tmp_path):
    """Simulate the kill: the last checkpoint is written, the export still holds the epoch before. A re-run
    of the finished training writes the checkpoint's policy to agent.pt; a published agent.pt is refused."""
    from agent.qnet import load_agent
    from agent.rewards import RewardStats
    from agent.training import load_checkpoint
    from interaction.training_runs import collect_episodes, train_dqn
    from tests.helpers import ScribbleFillBackend

    samples = [("bars-c", 1), ("bars-c", 2)]
    reward = collect_episodes(data, "train", samples, ScribbleFillBackend(), tmp_path / "reward.csv", epochs=2,
                              rounds=3, window=6, min_nb_nodes=4, seed=0, progress=False)
    stats = RewardStats.from_frame(reward)
    kw = dict(stats=stats, prefill=[], rounds=3, window=6, min_nb_nodes=4, seed=0, device="cpu",
              weights_path=tmp_path / "agent.pt", checkpoint_path=tmp_path / "ckpt.pt", log_path=tmp_path / "log.csv",
              batch_size=2, owner={"run": "a"}, progress=False)
    train_dqn(data, "train", samples, ScribbleFillBackend(), epochs=1, **kw)
    after_epoch_1 = (tmp_path / "agent.pt").read_bytes()
    train_dqn(data, "train", samples, ScribbleFillBackend(), epochs=2, **kw)
    (tmp_path / "agent.pt").write_bytes(after_epoch_1)        # the kill: epoch 2's export never happened
    train_dqn(data, "train", samples, ScribbleFillBackend(), epochs=2, **kw)
    final = load_checkpoint(tmp_path / "ckpt.pt", "cpu").policy.state_dict()
    exported = load_agent(tmp_path / "agent.pt").state_dict()
    assert all(torch.equal(final[k], exported[k]) for k in final)
    assert (tmp_path / "agent.pt").read_bytes() != after_epoch_1
    published = tmp_path / "published.pt"
    published.write_bytes(after_epoch_1)
    with pytest.raises(CheckpointError, match=rf"{published} exists and was not written by this training run"):
        train_dqn(data, "train", samples, ScribbleFillBackend(), epochs=2, **dict(kw, weights_path=published))
    assert published.read_bytes() == after_epoch_1


def test_strict_loader_names_missing_and_unexpected_keys(tmp_path):
    from core.checkpoint import load_into, load_state_dict

    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    state = {"module.0.weight": torch.zeros(3, 2), "module.0.bias": torch.zeros(3), "module.2.weight": torch.zeros(1)}
    p = tmp_path / "I.pth"
    torch.save({"state_dict": state}, p)
    loaded = load_state_dict(p, expected="IPN's I.pth")
    assert set(loaded) == {"0.weight", "0.bias", "2.weight"}
    with pytest.raises(CheckpointError, match=rf"{p} does not fit the network: 2 keys missing \(e.g. 1.weight, 1.bias\), "
                                              r"1 unexpected \(e.g. 2.weight\); expected IPN's I.pth"):
        load_into(net, loaded, p, expected="IPN's I.pth")
