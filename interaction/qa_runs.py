"""The QA network's training data: the episodes that make it (PROTOCOL.md §6; ``generate_data.py``).

A backend runs the oracle-``worst`` protocol (first scribble, full videos, 5 rounds published) through
:func:`interaction.loop.run_episodes`; after every round each object's probability map is saved in the
published layout and its rows join ``{out}/index.csv`` (layout, columns and targets: :mod:`agent.qa_data`,
which holds the parts: targets, index, dataset, augmentation, training).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import pandas as pd

from agent.qa_data import (
    COLUMNS,
    INDEX_FILE,
    META_FILE,
    TARGET_THRESHOLD,
    prob_relpath,
    quantise,
    read_index,
    single_object_jf,
)
from agent.selection import WorstSelector
from core.identity import check_identity
from core.io import atomic_write_json, atomic_write_text
from datasets.layout import RESOLUTION, DatasetSpec
from interaction.loop import run_episodes

log = logging.getLogger(__name__)


class QADataWriter:
    """``on_round`` / ``on_sample`` callbacks for :func:`interaction.loop.run_episodes` that save the
    probability maps and append the finished sample's rows to the index."""

    def __init__(self, spec: DatasetSpec, out_dir: str | os.PathLike) -> None:
        self.spec = spec
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        index = self.out / INDEX_FILE
        self._text = index.read_text() if index.exists() else ",".join(COLUMNS) + "\n"
        self._pending: list[dict[str, Any]] = []
        self._gt: tuple[str, np.ndarray] | None = None

    def _annotations(self, seq: str) -> np.ndarray:
        if self._gt is None or self._gt[0] != seq:
            self._gt = (seq, self.spec.annotations(seq))
        return self._gt[1]

    def on_round(self, sample, rnd, out) -> None:
        seq, scribble_idx = sample.sequence, int(sample.scribble_idx)
        start = int(sample.window[0]) if sample.window else 0
        probs = np.asarray(out.probs)                    # (T', K+1, H, W)
        T, K = probs.shape[0], probs.shape[1] - 1
        gt = self._annotations(seq)[start:start + T]
        for k in range(1, K + 1):
            q = quantise(probs[:, k])
            target, empty = single_object_jf(gt == k, q)
            for t in range(T):
                frame = start + t
                rel = prob_relpath(rnd.round, scribble_idx, seq, k, frame)
                path = self.out / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), q[t]):
                    raise OSError(f"cannot write {path}")
                self._pending.append({"interaction": rnd.round, "scribble": scribble_idx, "sequence": seq, "object": k,
                                      "frame": frame, "target": float(target[t]), "both_empty": int(empty[t]),
                                      "image": f"JPEGImages/{RESOLUTION}/{seq}/{frame:05d}.jpg", "prob": rel})

    def on_sample(self, sample, report=None) -> None:
        self.add_rows(self.take())

    def take(self) -> list[dict[str, Any]]:
        """The index rows of the maps saved since the last call (a Ray worker hands them to the driver)."""
        rows, self._pending = self._pending, []
        return rows

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append one finished sample's rows to the index (atomically)."""
        self._text += pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False, header=False, float_format="%.6f")
        atomic_write_text(self.out / INDEX_FILE, self._text)


def generate_qa_data(spec: DatasetSpec, split: str, backend, out_dir: str | os.PathLike, *, rounds: int = 5,
                     scribbles: Sequence[int] = (1,), sequences: Sequence[str] | None = None,
                     min_nb_nodes: int = 4, seed: int = 0, progress: bool = True, fanout=None,
                     build=None) -> pd.DataFrame:
    """Run oracle-``worst`` for ``rounds`` rounds on every (sequence of ``split``, scribble index in
    ``scribbles``) not yet in ``{out_dir}/index.csv`` and save their probability maps. Returns the index.

    ``fanout`` with several workers (:class:`interaction.parallel.Fanout`): the samples run on Ray
    workers whose parts ``build()`` makes (``interaction.factory.build_episode_parts``); each worker
    writes its maps under ``out_dir`` (on a cluster, a folder every node sees) and the driver appends
    the index rows in the serial order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": spec.name, "dataset_root": str(Path(spec.root).resolve()), "split": split,
            "backend": getattr(backend, "name", type(backend).__name__), "rounds": rounds, "method": "worst",
            "setting": "oracle", "threshold": TARGET_THRESHOLD}
    meta_path = out / META_FILE
    # every setting that decides the maps, recorded in run.json: data of another run is refused, not mixed
    from interaction.evaluate import parts_identity

    ident = {k: v for k, v in meta.items() if k != "dataset_root"}
    ident.update(backend=parts_identity(backend), min_nb_nodes=int(min_nb_nodes), seed=int(seed),
                 scribbles=[int(s) for s in scribbles], sequences=list(sequences) if sequences else None)
    check_identity(out / "run.json", ident, has_outputs=(out / INDEX_FILE).exists(), what=str(out),
                   fix=f"use another out_dir, or delete {out} to generate it again")
    atomic_write_json(meta_path, meta)
    old_index = read_index(out)
    done = set(zip(old_index["sequence"].astype(str), old_index["scribble"].astype(int), strict=True))
    seqs = spec.subset(split, sequences)
    samples = [(q, s) for q in seqs for s in scribbles if s <= spec.sequences[q]["num_scribbles"]
               and (q, s) not in done]
    log.info("QA data: %d samples to run (%d already in %s)", len(samples), len(done), out / INDEX_FILE)
    if samples and fanout is not None and not fanout.serial:
        import functools

        from interaction.parallel import EpisodeSettings, Job, run_jobs

        writer = QADataWriter(spec, out)
        run_jobs([Job(q, int(s), int(seed)) for q, s in samples],
                 EpisodeSettings(spec, split, rounds, min_nb_nodes=min_nb_nodes),
                 lambda _job, _rec, _report, rows: writer.add_rows(rows), fanout, build=build,
                 collect=functools.partial(QADataWriter, spec, out), ordered=True, progress=progress, desc="QA data")
    elif samples:
        writer = QADataWriter(spec, out)
        run_episodes(spec, samples, split, backend, WorstSelector(), rounds, setting="oracle",
                     min_nb_nodes=min_nb_nodes, seed=seed, on_round=writer.on_round, on_sample=writer.on_sample,
                     progress=progress, desc="QA data")
    return read_index(out)
