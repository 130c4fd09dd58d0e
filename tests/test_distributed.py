"""QA training under torchrun (2 gloo processes) follows the single-process loss curve, and resumes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.distributed import DistInfo, GlobalBatchShards

ROOT = Path(__file__).resolve().parents[1]


def test_shards_split_the_single_process_batches():
    n, batch, seed = 23, 6, 7
    single = list(GlobalBatchShards(n, batch, DistInfo(0, 1), seed, drop_last=True))
    assert [len(b) for b in single] == [6, 6, 6]                  # 23 // 6 full batches, the rest dropped
    assert len(set(sum(single, []))) == 18 and set(sum(single, [])) <= set(range(n))
    parts = [list(GlobalBatchShards(n, batch, DistInfo(r, 3), seed, drop_last=True)) for r in range(3)]
    for i, b in enumerate(single):
        assert sorted(sum((p[i] for p in parts), [])) == sorted(b)
        assert all(len(p[i]) == batch // 3 for p in parts)
    assert list(GlobalBatchShards(n, batch, DistInfo(0, 1), seed + 1, True)) != single
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchShards(n, 5, DistInfo(0, 2), seed, True)


@pytest.mark.slow
def test_two_gloo_processes_follow_one(tiny_davis, tmp_path):
    from interaction.qa_runs import generate_qa_data
    from VOS.registry import build_backend

    qa = tmp_path / "qa"
    generate_qa_data(tiny_davis, "val", build_backend("classic", torch.device("cpu")), qa, rounds=2, scribbles=[1],
                     progress=False)
    common = ["with", f"qa_dir={qa}", "batch_size=8", "crop_size=32", "min_size=16", "resize=None",
              "val_fraction=0.5", "device=cpu", "progress=False"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = [sys.executable, "quality_assessment.py"]
    group = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "quality_assessment.py"]
    # one process for 2 epochs; two processes for 1 epoch, then resumed for the second
    for name, cmd, epochs in (("one", single, 2), ("two", group, 1), ("two", group, 2)):
        out = subprocess.run(cmd + common + [f"epochs={epochs}", f"weights_dir={tmp_path / name / 'w'}",
                                             f"train_dir={tmp_path / name / 't'}"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
    one = pd.read_csv(tmp_path / "one/w/assess_net_history_steps.csv")
    two = pd.read_csv(tmp_path / "two/w/assess_net_history_steps.csv")
    assert set(one["epoch"]) == {1, 2} and len(one) >= 4 and len(two) == len(one)
    # Same global batches, gradients averaged over equal shards, batch norm over the global batch:
    # only the order of floating-point sums differs (all-reduce; E[x^2] - mean^2 instead of a
    # two-pass variance), about 1e-7 relative per operation in float32, grown over a few steps.
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)
    assert abs(two["loss"].iloc[-1] - one["loss"].iloc[0]) > 1e-6, "the loss did not move: nothing was compared"
    # one checkpoint and one export, written by process 0 only (no leftover temporaries)
    files = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert sum(1 for f in files if f.name == "checkpoint.pt") == 1
    assert sum(1 for f in files if f.name == "assess_net.pt") == 1
    assert not [f for f in files if ".tmp" in f.name]
    ckpt = torch.load(tmp_path / "two/t/quality/checkpoint.pt", map_location="cpu", weights_only=True)
    ref = torch.load(tmp_path / "one/t/quality/checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == ref["epoch"] == 1 and len(ckpt["history"]) == 2
    for k, v in ref["model"].items():
        if v.is_floating_point():
            np.testing.assert_allclose(ckpt["model"][k].numpy(), v.numpy(), rtol=1e-3, atol=1e-5, err_msg=k)
