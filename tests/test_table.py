"""The results-table script on the published results tree."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import results_table
from interaction.table import collect, wide_table

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ivosw-published-results"

# PROTOCOL.md §9: round-AUC x100 (and J&F after round 8 where published) on DAVIS-2017 val
PAPER = {("ATNet", "wild"): {"random": (72.33, 81.11), "linspace": (72.93, 83.29), "worst": (73.33, 82.24),
                             "ours": (74.10, 83.01)},
         ("ATNet", "oracle"): {"worst": (73.69, 82.71), "ours": (74.02, 82.95)},
         ("MANet", "wild"): {"random": (69.53,), "linspace": (70.06,), "worst": (69.70,), "ours": (70.77, 79.34)},
         ("MANet", "oracle"): {"worst": (70.78,), "ours": (71.09,)},
         ("IPN", "wild"): {"random": (47.49,), "linspace": (46.98,), "worst": (47.26,), "ours": (47.98, 55.30)},
         ("IPN", "oracle"): {"worst": (48.04,), "ours": (48.24,)}}


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"published results not found at {PUBLISHED}")
def test_table_renders_the_published_numbers(tmp_path, capsys):
    assert results_table.main(["--root", str(PUBLISHED), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 12            # 3 VOS x 2 settings x 2 datasets
    for (vos, setting), methods in PAPER.items():
        row = table[(table.VOS == vos) & (table.setting == setting) & (table.dataset == "davis")].iloc[0]
        for m, values in methods.items():
            assert row[f"{m} AUC"] == pytest.approx(values[0], abs=0.005)
            if len(values) > 1:
                assert row[f"{m} J&F"] == pytest.approx(values[1], abs=0.005)
            assert f"{values[0]:.2f}" in printed
    assert (tmp_path / "table.md").read_text().count("\n| ") >= 12
    assert len(list(tmp_path.glob("curves_*.png"))) == 12


def test_wide_table_columns(tmp_path):
    import json

    for m, auc in (("worst", 0.5), ("random", 0.4)):
        d = tmp_path / "classic" / "oracle" / "synthetic" / m
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"auc": auc, "curve": {"J_AND_F": [0, auc, auc + 0.1]}}))
    t = wide_table(collect(tmp_path))
    assert list(t.columns) == ["VOS", "setting", "dataset", "random AUC", "random J&F", "worst AUC", "worst J&F"]
    assert t.iloc[0]["worst J&F"] == 60.0 and t.iloc[0]["random AUC"] == 40.0
