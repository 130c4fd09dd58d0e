"""Paper-style results tables and J&F-vs-round plots from a results tree.

A results tree is ``{root}/{VOS}/{setting}/{dataset}/{method}/summary.json`` (ours, or the
published files). One table row per (VOS, setting, dataset), one column pair per method:
round-AUC x100 and J&F after the last round x100.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from interaction.metrics import round_auc

METHOD_ORDER = ["random", "linspace", "worst", "ours", "greedy"]
SETTING_ORDER = ["wild", "oracle"]


def collect(root: str | Path) -> pd.DataFrame:
    """One row per summary.json: vos, setting, dataset, method, auc, final, rounds, curve, samples."""
    root = Path(root)
    rows = []
    for f in sorted(root.glob("*/*/*/*/summary.json")):
        vos, setting, dataset, method = f.relative_to(root).parts[:4]
        d = json.loads(f.read_text())
        curve = [float(v) for v in d["curve"]["J_AND_F"]]
        rows.append({"vos": vos, "setting": setting, "dataset": dataset, "method": method,
                     "auc": float(d.get("auc", round_auc(curve))), "final": curve[-1], "rounds": len(curve) - 1,
                     "curve": curve, "samples": d.get("num_samples"), "path": str(f)})
    return pd.DataFrame(rows, columns=["vos", "setting", "dataset", "method", "auc", "final", "rounds",
                                       "curve", "samples", "path"])


def _order(values: Iterable[str], preferred: list[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def wide_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (vos, setting, dataset); columns '<method> AUC' (round-AUC) and '<method> J&F' (after the
    last round), x100 with 2 decimals."""
    if df.empty:
        return pd.DataFrame()
    methods = _order(df["method"], METHOD_ORDER)
    out = []
    for (vos, setting, dataset), g in df.groupby(["vos", "setting", "dataset"], sort=False):
        row = {"VOS": vos, "setting": setting, "dataset": dataset}
        for m in methods:
            hit = g[g["method"] == m]
            row[f"{m} AUC"] = round(100 * hit["auc"].iloc[0], 2) if len(hit) else None
            row[f"{m} J&F"] = round(100 * hit["final"].iloc[0], 2) if len(hit) else None
        out.append(row)
    table = pd.DataFrame(out)
    table["_s"] = table["setting"].map({s: i for i, s in enumerate(SETTING_ORDER)}).fillna(9)
    table = table.sort_values(["VOS", "dataset", "_s"]).drop(columns="_s").reset_index(drop=True)
    # keep method columns together: AUC then J&F per method
    cols = ["VOS", "setting", "dataset"]
    for m in methods:
        cols += [c for c in table.columns if c.split(" ")[0] == m]
    return table[cols]


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table; empty cells for methods not run."""
    if table.empty:
        return "(no results)\n"
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append("" if v is None or (isinstance(v, float) and pd.isna(v)) else
                         (f"{v:.2f}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One PNG per (VOS, setting, dataset): J&F after each round, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (vos, setting, dataset), g in df.groupby(["vos", "setting", "dataset"], sort=True):
        fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
        for m in _order(g["method"], METHOD_ORDER):
            r = g[g["method"] == m].iloc[0]
            ax.plot(range(1, len(r["curve"])), [100 * v for v in r["curve"][1:]], marker="o", ms=3,
                    label=f"{m} (AUC {100 * r['auc']:.2f})", linestyle="--" if m == "greedy" else "-")
        ax.set_xlabel("round")
        ax.set_ylabel("J&F (x100)")
        ax.set_title(f"{vos} / {setting} / {dataset}")
        ax.grid(alpha=0.3)
        ax.set_xlim(1, max(2, max(len(c) for c in g["curve"]) - 1))
        lows = [100 * v for c in g["curve"] for v in c[1:]]
        if lows:
            ax.set_ylim(max(0, min(lows) - 5), min(100, max(lows) + 3))
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = out_dir / f"curves_{vos}_{setting}_{dataset}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
