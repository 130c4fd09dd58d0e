"""The round loop and the evaluation over real davisinteractive sessions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.selection import GreedySelector, LinspaceSelector, RandomSelector, WorstSelector, select_worst
from interaction.evaluate import evaluate, samples_of
from interaction.loop import run_episodes
from interaction.metrics import round_auc
from tests.helpers import ScribbleFillBackend, object_weighted_jf


def test_worst_rounds_follow_the_selector_and_scores_are_exact(tiny_davis):
    masks_seen = []
    recs = run_episodes(tiny_davis, [("bars-a", 1), ("bars-b", 2)], "val", ScribbleFillBackend(),
                        WorstSelector(), rounds=4, progress=False,
                        on_round=lambda rec, rr, out: masks_seen.append((rec.sequence, out.masks.copy())))
    assert len(recs) == 2
    for rec in recs:
        assert len(rec.rounds) == 4 and rec.window == (0, rec.num_frames)
        annotated = []
        for i, rr in enumerate(rec.rounds):
            annotated.append(rr.frame)
            assert rr.counts.sum() == i + 1
            if i < 3:
                # the selector got the oracle quality and chose the worst frame not annotated yet
                assert rr.next_frame == select_worst(rr.frame_jf, annotated)
                # the robot scribbled on exactly that frame in the next round
                assert rec.rounds[i + 1].frame == rr.next_frame
            else:
                assert rr.next_frame is None
    # J&F per round equals an independent computation on the masks the backend produced
    for (seq, masks), rr in zip(masks_seen, [r for rec in recs for r in rec.rounds], strict=True):
        gt = tiny_davis.annotations(seq).astype(np.int64)
        assert rr.jf == pytest.approx(object_weighted_jf(gt, masks.astype(np.int64), 2), abs=1e-12)


def test_window_episode_is_window_relative_and_gt_outside(tiny_davis):
    rec = run_episodes(tiny_davis, [("bars-a", 3)], "val", ScribbleFillBackend(reach=0), RandomSelector(),
                       rounds=3, window=3, seed=5, progress=False)[0]
    start, stop = rec.window
    assert stop - start == 3 and start <= rec.first_frame < stop
    for rr in rec.rounds:
        assert len(rr.frame_jf) == 3 and 0 <= rr.frame < 3
    # ground truth is submitted outside the window: the whole-video score is at least the window's
    assert rec.rounds[-1].jf >= np.mean(rec.rounds[-1].frame_jf) - 1e-9


@pytest.mark.parametrize("window", [None, 3])
def test_the_session_scores_the_backends_masks_not_ground_truth(tiny_davis, window):
    """What the session scored (its report) is the backend's masks inside the window and ground truth only
    outside it: fails if ground truth were submitted in place of a prediction."""
    masks, reports = [], []
    recs = run_episodes(tiny_davis, [("bars-a", 3)], "val", ScribbleFillBackend(reach=0), RandomSelector(),
                        rounds=3, window=window, seed=2, progress=False,
                        on_round=lambda rec, rr, out: masks.append(out.masks.astype(np.int64)),
                        on_sample=lambda rec, report: reports.append(report))
    rec, report = recs[0], reports[0]
    start, stop = rec.window
    gt = tiny_davis.annotations("bars-a").astype(np.int64)
    T = len(gt)
    for rnd, m in enumerate(masks, start=1):
        rows = report[report["interaction"] == rnd]
        assert len(rows) == T * 2                                   # every frame, both objects
        for t in range(T):
            got = rows[rows["frame"] == t].sort_values("object_id")["j_and_f"].to_numpy()
            if start <= t < stop:
                want = [object_weighted_jf(gt[t:t + 1] == k, m[t - start:t - start + 1] == k, 1) for k in (1, 2)]
            else:
                want = [1.0, 1.0]                                   # ground truth outside the window
            np.testing.assert_allclose(got, want, atol=1e-12)
        inside = rows[(rows["frame"] >= start) & (rows["frame"] < stop)]["j_and_f"]
        assert inside.min() < 0.99                                  # the backend is not perfect here
        assert rec.rounds[rnd - 1].jf == pytest.approx(rows["j_and_f"].groupby(rows["object_id"]).mean().mean())


def test_same_seed_same_curve_and_frames(tiny_davis):
    def run(seed):
        recs = run_episodes(tiny_davis, [("bars-a", 1), ("bars-b", 1)], "val", ScribbleFillBackend(),
                            RandomSelector(), rounds=4, seed=seed, progress=False)
        return [(r.curve, [x.frame for x in r.rounds]) for r in recs]

    assert run(3) == run(3)
    frames = {tuple(f for _, fr in run(s) for f in fr) for s in range(4)}
    assert len(frames) > 1      # the seed matters


def test_greedy_is_an_upper_bound_of_its_candidates(tiny_davis):
    rec = run_episodes(tiny_davis, [("bars-a", 1)], "val", ScribbleFillBackend(), GreedySelector(), rounds=2,
                       progress=False)[0]
    # greedy's choice gives the best next-round window J&F among all frames: re-run each choice
    best = rec.rounds[1].jf
    for f in range(rec.num_frames):
        class Fixed:
            name, needs_quality = "fixed", False

            def __call__(self, ctx, f=f):
                return f
        other = run_episodes(tiny_davis, [("bars-a", 1)], "val", ScribbleFillBackend(), Fixed(), rounds=2,
                             progress=False)[0]
        assert other.rounds[1].jf <= best + 1e-12


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_summary(tiny_davis, tmp_path):
    kw = dict(setting="oracle", rounds=3, seed=1, min_nb_nodes=4, progress=False,
              identity={"method": "random"})
    full = evaluate(tiny_davis, "val", ScribbleFillBackend(), RandomSelector(), tmp_path / "full", **kw)

    class Dying(RandomSelector):
        calls = 0

        def __call__(self, ctx):
            Dying.calls += 1
            if Dying.calls == 7:      # in the middle of the 4th sample
                raise _Interrupt
            return super().__call__(ctx)

    with pytest.raises(_Interrupt):
        evaluate(tiny_davis, "val", ScribbleFillBackend(), Dying(), tmp_path / "resumed", **kw)
    done = list((tmp_path / "resumed" / "samples").glob("*.json"))
    assert len(done) == 3
    resumed = evaluate(tiny_davis, "val", ScribbleFillBackend(), RandomSelector(), tmp_path / "resumed", **kw)
    for key in ("auc", "curve", "num_samples"):
        assert resumed[key] == full[key]
    assert [s["frames"] for s in resumed["samples"]] == [s["frames"] for s in full["samples"]]
    assert resumed["davisinteractive"]["curve"]["J_AND_F"][:-1] == pytest.approx(full["curve"]["J_AND_F"])
    on_disk = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert on_disk["auc"] == pytest.approx(round_auc(on_disk["curve"]["J_AND_F"]))
    assert (tmp_path / "resumed" / "report.csv").exists()


def test_resume_refuses_other_settings(tiny_davis, tmp_path):
    kw = dict(setting="oracle", rounds=2, min_nb_nodes=4, progress=False, sequences=["bars-a"])
    evaluate(tiny_davis, "val", ScribbleFillBackend(), LinspaceSelector(), tmp_path, seed=1, **kw)
    from interaction.results import ResultsMismatch

    with pytest.raises(ResultsMismatch, match="seed: 1 there, 2 now"):
        evaluate(tiny_davis, "val", ScribbleFillBackend(), LinspaceSelector(), tmp_path, seed=2, **kw)


def test_samples_of(tiny_davis):
    assert samples_of(tiny_davis, "val") == [("bars-a", 1), ("bars-a", 2), ("bars-a", 3),
                                            ("bars-b", 1), ("bars-b", 2), ("bars-b", 3)]
    assert samples_of(tiny_davis, "train", scribbles=[1]) == [("bars-c", 1)]


PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ivosw-published-results"


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"published results not found at {PUBLISHED}")
def test_round_auc_reproduces_every_published_file():
    files = sorted(PUBLISHED.rglob("summary.json"))
    assert len(files) == 36
    for f in files:
        d = json.loads(f.read_text())
        assert round_auc(d["curve"]["J_AND_F"]) == pytest.approx(d["auc"], abs=1e-9), f


def test_wrong_object_count_is_a_clear_error(tiny_davis, tmp_path):
    import shutil

    from datasets.layout import DatasetError, DatasetSpec

    root = tmp_path / "copy"
    shutil.copytree(tiny_davis.root, root)
    meta = {k: dict(v) for k, v in tiny_davis.sequences.items()}
    meta["bars-a"]["num_objects"] = 1          # the masks hold ids 1 and 2
    spec = DatasetSpec("copy", root, meta)
    with pytest.raises(DatasetError, match=r"object ids \[2\].*1 objects"):
        run_episodes(spec, [("bars-a", 1)], "val", ScribbleFillBackend(), WorstSelector(), rounds=1, progress=False)
