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
    assert set(table.setting) == {"oracle", "wild"} and len(table) == 2
    printed = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[4:-1]]
               for line in out.splitlines() if line.startswith("| classic |")}
    for setting, methods in (("oracle", ["random", "linspace", "worst", "ours", "greedy"]),
                             ("wild", ["random", "linspace", "worst", "ours"])):
        row = table[table.setting == setting].iloc[0]
        for m in methods:
            # the table's numbers are the rendered summaries': round-AUC (trapz / rounds) and the last J&F, x100
            summary = json.loads((tmp_path / f"results/classic/{setting}/composite/{m}/summary.json").read_text())
            curve = summary["curve"]["J_AND_F"]
            auc = sum((a + b) / 2 for a, b in zip(curve[:-1], curve[1:], strict=True)) / (len(curve) - 1)
            assert summary["auc"] == pytest.approx(auc, abs=1e-12)
            assert row[f"{m} AUC"] == pytest.approx(round(100 * auc, 2), abs=1e-9), (setting, m)
            assert row[f"{m} J&F"] == pytest.approx(round(100 * curve[-1], 2), abs=1e-9), (setting, m)
            col = list(table.columns[3:]).index(f"{m} AUC")
            assert printed[setting][col:col + 2] == [f"{row[f'{m} AUC']:.2f}", f"{row[f'{m} J&F']:.2f}"]
        assert 0 < row["random AUC"] < 100
    wild = json.loads((tmp_path / "results/classic/wild/composite/worst/summary.json").read_text())
    assert "quality_pearson" in wild["rounds"][0]          # the QA network ran and was scored
    assert "| classic | oracle | composite |" in out

    # A second run reuses everything: no new samples, the same summaries.
    before = {p: p.read_text() for p in (tmp_path / "results").rglob("samples/*.json")}
    assert demo.main(["--scale", "tiny", "--work-dir", str(tmp_path), "--no-progress", "--device", "cpu"]) == 0
    out = capfd.readouterr().out
    assert "reusing" in out
    after = {p: p.read_text() for p in (tmp_path / "results").rglob("samples/*.json")}
    assert after == before
