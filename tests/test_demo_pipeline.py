"""The main job end to end at a tiny scale: every step of `make demo`, as subprocesses."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import demo

pytestmark = pytest.mark.slow


def test_demo_pipeline_tiny_and_reuse(tmp_path, capfd):
    assert demo.main(["--scale", "tiny", "--work-dir", str(tmp_path), "--no-progress", "--device", "cpu"]) == 0
    out = capfd.readouterr().out
    for path in ("train/reward.csv", "train/pretrain.csv", "weights/agent.pt", "weights/assess_net.pt",
                 "results/table.md", "results/table.csv"):
        assert (tmp_path / path).exists(), path
    table = pd.read_csv(tmp_path / "results/table.csv")
    assert set(table.setting) == {"oracle", "wild"}
    for setting, methods in (("oracle", ["random", "linspace", "worst", "ours", "greedy"]),
                             ("wild", ["random", "linspace", "worst", "ours"])):
        row = table[table.setting == setting].iloc[0]
        for m in methods:
            assert 0 < row[f"{m} AUC"] <= 100, (setting, m)
    wild = json.loads((tmp_path / "results/classic/wild/synthetic/worst/summary.json").read_text())
    assert "quality_pearson" in wild["rounds"][0]          # the QA network ran and was scored
    assert "| classic | oracle | synthetic |" in out

    # A second run reuses everything: no new samples, the same summaries.
    before = {p: p.read_text() for p in (tmp_path / "results").rglob("samples/*.json")}
    assert demo.main(["--scale", "tiny", "--work-dir", str(tmp_path), "--no-progress", "--device", "cpu"]) == 0
    out = capfd.readouterr().out
    assert "reusing" in out
    after = {p: p.read_text() for p in (tmp_path / "results").rglob("samples/*.json")}
    assert after == before
