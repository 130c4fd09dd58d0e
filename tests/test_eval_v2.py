"""The v2 recommender through the user's commands: ``train_agent_v2.py`` trains it on a tiny synthetic
train split, ``eval_agent.py with method=ours agent=v2`` runs it in both settings and writes under
``ours-v2``, and its choices equal those of the parts wired by hand as the benchmark wires them
(benchmarks/bench_agent_v2.py); the published-layout agent still writes under ``ours``, and a v2
checkpoint is refused with ``with paper`` or without ``agent=v2``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from agent.imitation import FeatureQuality, V2Selector, checkpoint_kind, load_checkpoint
from agent.lookahead import BackendTap
from agent.qnet import QNet
from core.checkpoint import CheckpointError
from core.identity import IdentityMismatch, file_sha256
from datasets.layout import resolve
from datasets.synthetic import generate
from interaction.evaluate import samples_of
from interaction.loop import run_episodes
from interaction.results import ResultsMismatch
from VOS.registry import build_backend, default_min_nb_nodes

ROUNDS = 3
TRAIN = dict(rounds=ROUNDS, epochs=3, qa_epochs=5, scribbles=[1], progress=False, device="cpu")


def _train(work: Path, **cfg) -> int:
    from train_agent_v2 import ex

    return ex.run(config_updates={**TRAIN, "data_dir": str(work / "data"), "train_dir": str(work / "train"),
                                  "weights_dir": str(work / "weights"), **cfg}).result


def _eval(work: Path, **cfg) -> float:
    from eval_agent import ex

    return ex.run(config_updates=dict(dict(data_dir=str(work / "data"), weights_dir=str(work / "weights"),
                                           results_dir=str(work / "results"), rounds=ROUNDS, method="ours",
                                           progress=False, device="cpu"), **cfg)).result


def _summary(work: Path, setting: str, method: str) -> dict:
    return json.loads((work / "results" / "classic" / setting / "synthetic" / method / "summary.json").read_text())


def _bench_module():
    """benchmarks/bench_agent_v2.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_agent_v2", Path(__file__).resolve().parents[1] / "benchmarks"
                                                  / "bench_agent_v2.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """2 train sequences, 1 val sequence (3 initial scribbles) of 6 frames at 48x80; the v2 agent
    trained on the 2 train samples of the first scribble."""
    w = tmp_path_factory.mktemp("v2")
    generate(w / "data" / "synthetic", train=2, val=1, frames=6, height=48, width=80, seed=0, objects=(1, 2),
             progress=False)
    assert _train(w) == 2 * (ROUNDS - 1)          # one decision after every round but the last, per sample
    return w


def test_training_writes_one_ranker_per_setting_and_the_feature_qa(work):
    wd = work / "weights"
    assert checkpoint_kind(wd / "feature_qa.pt") == "feature-qa"
    for setting in ("oracle", "wild"):
        path = wd / f"agent_v2_{setting}.pt"
        assert checkpoint_kind(path) == "agent-v2"
        assert torch.load(path, weights_only=True)["config"]["setting"] == setting
    assert sorted(p.name for p in (work / "train" / "agent_v2_decisions").glob("*.pkl")) == [
        "syn-train-000__001.pkl", "syn-train-001__001.pkl"]


def test_training_writes_the_benchmarks_seed_0_weights(work):
    """train_agent_v2.py and benchmarks/bench_agent_v2.py train with the same calls: the same files."""
    import pickle

    from agent.features import QA_FEATURES
    from agent.imitation import fit_feature_qa

    bench = _bench_module()
    episodes = [pickle.loads(p.read_bytes()) for p in sorted((work / "train" / "agent_v2_decisions").glob("*.pkl"))]
    # the benchmark's defaults: --qa-features image --qa-dropout 0.5 --qa-members 5
    qa = fit_feature_qa(episodes, features=QA_FEATURES["image"], epochs=TRAIN["qa_epochs"], seed=0, members=5,
                        dropout=0.5)
    saved = torch.load(work / "weights" / "feature_qa.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in qa.state_dict().items())
    for setting in ("oracle", "wild"):
        net = bench.train_variant(episodes, setting, "full", FeatureQuality(qa), seed=0, wild_states="in-sample",
                                  folds=3, qa_epochs=TRAIN["qa_epochs"], qa_members=5, rank_epochs=TRAIN["epochs"],
                                  members=3)
        saved = torch.load(work / "weights" / f"agent_v2_{setting}.pt", weights_only=True)
        assert saved["config"]["members"] == 3
        assert saved["state_dict"].keys() == net.state_dict().keys()
        assert all(torch.equal(saved["state_dict"][k], v) for k, v in net.state_dict().items())


def test_training_again_reuses_the_collection_and_gives_the_same_weights(work):
    pkl = sorted((work / "train" / "agent_v2_decisions").glob("*.pkl"))
    stamps = [p.stat().st_mtime_ns for p in pkl]
    before = torch.load(work / "weights" / "agent_v2_wild.pt", weights_only=True)["state_dict"]
    _train(work, weights_dir=str(work / "weights_again"))
    assert [p.stat().st_mtime_ns for p in pkl] == stamps
    after = torch.load(work / "weights_again" / "agent_v2_wild.pt", weights_only=True)["state_dict"]
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(IdentityMismatch, match="other settings"):       # a changed collection is refused, not mixed
        _train(work, candidates=3, weights_dir=str(work / "weights_refused"))


def _by_hand(work: Path, setting: str) -> list:
    """The same evaluation with the parts built as benchmarks/bench_agent_v2.py builds them."""
    spec = resolve("synthetic", work / "data")
    tap = BackendTap(build_backend("classic", torch.device("cpu")))
    net = load_checkpoint(work / "weights" / f"agent_v2_{setting}.pt", "agent-v2")
    qa = FeatureQuality(load_checkpoint(work / "weights" / "feature_qa.pt", "feature-qa"), source=tap) \
        if setting == "wild" else None
    return run_episodes(spec, samples_of(spec, "val"), "val", tap, V2Selector(net, qa=qa, tap=tap), ROUNDS,
                        setting=setting, quality_fn=qa, min_nb_nodes=default_min_nb_nodes("classic"), seed=0,
                        progress=False)


@pytest.mark.parametrize("setting", ["oracle", "wild"])
def test_eval_agent_runs_the_v2_agent_under_ours_v2(work, setting):
    auc = _eval(work, setting=setting, agent="v2")
    s = _summary(work, setting, "ours-v2")
    assert s["auc"] == auc and s["num_samples"] == 3 and len(s["curve"]["J_AND_F"]) == ROUNDS + 1
    assert not (work / "results" / "classic" / setting / "synthetic" / "ours").exists()
    run = json.loads((work / "results" / "classic" / setting / "synthetic" / "ours-v2" / "run.json").read_text())
    weights = work / "weights" / f"agent_v2_{setting}.pt"
    assert run["agent"] == "v2" and run["method"] == "ours"
    assert run["selector"]["weight_files"][0]["sha256"] == file_sha256(weights)
    if setting == "wild":
        assert run["quality"]["weight_files"][0]["sha256"] == file_sha256(work / "weights" / "feature_qa.pt")
    else:
        assert run["quality"] is None
    ref = _by_hand(work, setting)
    assert [x["frames"] for x in s["samples"]] == [[r.frame for r in rec.rounds] for rec in ref]
    assert sum((x["curve"] for x in s["samples"]), []) == pytest.approx(sum((rec.curve for rec in ref), []), abs=1e-12)


def test_a_changed_v2_checkpoint_does_not_resume_its_results(work):
    _eval(work, setting="oracle", agent="v2")                       # same identity: resumes, runs nothing
    _train(work, seed=1, weights_dir=str(work / "weights_seed1"))
    with pytest.raises(ResultsMismatch, match="agent_v2_oracle.pt"):
        _eval(work, setting="oracle", agent="v2",
              agent_weights=str(work / "weights_seed1" / "agent_v2_oracle.pt"))


def test_the_published_agent_still_writes_under_ours(work):
    published = work / "weights" / "agent.pt"
    torch.manual_seed(0)
    torch.save(QNet().state_dict(), published)
    _eval(work, setting="oracle", agent="v2")                         # (resumed when the test above ran)
    v2 = _summary(work, "oracle", "ours-v2")
    _eval(work, setting="oracle")
    s = _summary(work, "oracle", "ours")
    assert s["num_samples"] == 3
    run = json.loads((work / "results" / "classic" / "oracle" / "synthetic" / "ours" / "run.json").read_text())
    assert "agent" not in run and run["selector"]["weight_files"][0]["sha256"] == file_sha256(published)
    assert _summary(work, "oracle", "ours-v2") == v2                  # untouched
    _eval(work, setting="oracle", paper=True)     # the paper flag with the published agent: the same run, resumed
    assert _summary(work, "oracle", "ours")["curve"] == s["curve"]


def test_paper_or_the_published_agent_with_a_v2_checkpoint_is_an_error_naming_the_file(work):
    v2 = str(work / "weights" / "agent_v2_oracle.pt")
    with pytest.raises(ValueError, match=r"`with paper`.*" + re.escape(v2) + ".*agent-v2"):
        _eval(work, setting="oracle", paper=True, agent_weights=v2)
    with pytest.raises(ValueError, match=r"`with paper`.*agent=v2 \(" + re.escape(v2)):
        _eval(work, setting="oracle", paper=True, agent="v2")
    with pytest.raises(ValueError, match=re.escape(v2) + " is an agent-v2 checkpoint.*add agent=v2"):
        _eval(work, setting="oracle", agent_weights=v2)
    with pytest.raises(ValueError, match="trained for setting=oracle, not wild"):
        _eval(work, setting="wild", agent="v2", agent_weights=v2)
    cut = work / "weights" / "cut.pt"
    cut.write_bytes((work / "weights" / "agent_v2_oracle.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match=re.escape(str(cut)) + " is truncated"):
        _eval(work, setting="oracle", agent="v2", agent_weights=str(cut))
    with pytest.raises(CheckpointError, match=re.escape(str(cut)) + " is truncated"):   # the published loader's
        _eval(work, setting="oracle", agent_weights=str(cut))


def test_with_paper_is_the_named_config():
    from eval_agent import ex

    run = ex.run("print_config", named_configs=["paper"], options={"--loglevel": "ERROR"})
    assert run.config["paper"] is True and run.config["agent"] == "published"
    assert run.config["agent_weights"].endswith("agent.pt")


def test_benchmark_table_keeps_the_rows_of_earlier_runs(tmp_path):
    """A run of another setting in the same --work adds its rows to table.json; a row it evaluates again is
    replaced; a corrupt table is an error naming the file."""
    bench = _bench_module()
    path = tmp_path / "table.json"
    bench.merge_table(path, {"wild/worst": {"auc": [54.0]}, "wild/ours": {"auc": [56.0]}})
    bench.merge_table(path, {"oracle/ours": {"auc": [58.0]}, "wild/ours": {"auc": [57.0]}})
    assert json.loads(path.read_text()) == {"wild/worst": {"auc": [54.0]}, "wild/ours": {"auc": [57.0]},
                                            "oracle/ours": {"auc": [58.0]}}
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="table.json is not valid JSON"):
        bench.merge_table(path, {"oracle/ours": {"auc": [58.0]}})
