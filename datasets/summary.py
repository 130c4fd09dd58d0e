"""One line per sequence of a DAVIS-layout dataset.

    python -m datasets.summary ROOT_OR_NAME [--data-dir data]

ROOT_OR_NAME is a known name (davis, ytbvos, synthetic, looked up under --data-dir) or a folder
(metadata.json if present, else read from the files; see :func:`datasets.layout.resolve`).
"""
from __future__ import annotations

import argparse
import sys

from datasets.layout import DatasetError, DatasetSpec, resolve


def summary_lines(spec: DatasetSpec) -> list[str]:
    """A header, one line per sequence (name, set, frames, objects, scribbles, size WxH), sorted by
    set then name, and a total line."""
    rows = sorted(spec.sequences.items(), key=lambda kv: (kv[1]["set"], kv[0]))
    width = max([len("sequence")] + [len(n) for n, _ in rows])
    lines = [f"{'sequence':<{width}}  {'set':<5}  {'frames':>6}  {'objects':>7}  {'scribbles':>9}  size"]
    for name, m in rows:
        W, H = m["image_size"]
        lines.append(f"{name:<{width}}  {m['set']:<5}  {m['num_frames']:>6}  {m['num_objects']:>7}  "
                     f"{m['num_scribbles']:>9}  {W}x{H}")
    lines.append(f"{len(rows)} sequences, {sum(m['num_frames'] for _, m in rows)} frames, "
                 f"{sum(m['num_objects'] for _, m in rows)} objects ({spec.name} at {spec.root})")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m datasets.summary", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="davis, ytbvos, synthetic or a DAVIS-layout folder")
    p.add_argument("--data-dir", default="data", help="where the known names live (default data)")
    a = p.parse_args(argv)
    try:
        spec = resolve(a.dataset, a.data_dir)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
