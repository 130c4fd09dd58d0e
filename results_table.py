"""Print the paper-style results table of a results tree, write it as Markdown and CSV, plot the curves.

    python results_table.py                      # results/ -> results/table.md, table.csv, curves_*.png
    python results_table.py --root ../shared/reference/ivosw-published-results --out /tmp/published
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.io import atomic_write_text
from interaction.table import collect, plot_curves, to_markdown, wide_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="results", help="results tree: {VOS}/{setting}/{dataset}/{method}/summary.json")
    ap.add_argument("--out", default=None, help="where table.md, table.csv and the plots go (default: --root)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        ap.error(f"{root} does not exist: run eval_agent.py first (README, 'Evaluation')")
    df = collect(root)
    if df.empty:
        ap.error(f"no {root}/*/*/*/*/summary.json found")
    out = Path(args.out or root)
    table = wide_table(df)
    md = to_markdown(table)
    atomic_write_text(out / "table.md", "Round-AUC and J&F after the last round, x100.\n\n" + md)
    atomic_write_text(out / "table.csv", table.to_csv(index=False))
    print(md, end="")
    print(f"\nwritten: {out / 'table.md'}, {out / 'table.csv'}")
    if not args.no_plots:
        for p in plot_curves(df, out):
            print(f"plot: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
