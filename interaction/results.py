"""Results on disk: one file per finished sample (atomic), then ``summary.json``.

Layout of ``results/{VOS}/{setting}/{dataset}/{method}/``::

    run.json                 the run's identity: every setting and input (with sha256 of the weight
                             files) that decides the results; a resumed run must match it
    samples/<seq>__<k>.json  per finished sample: curve, chosen frames, their ranks, timings
    samples/<seq>__<k>.csv   davisinteractive's report rows of that sample
    report.csv               all report rows (davisinteractive's per frame/object J, F, J&F)
    summary.json             {"auc", "curve": {"J_AND_F": [0, m1..mN]}} + extra keys (see finalize)
"""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from core.identity import IdentityMismatch, check_identity
from core.io import atomic_write_json, atomic_write_text
from datasets import davis_compat as dc
from datasets.layout import DatasetSpec, registered
from interaction.loop import SampleRecord
from interaction.metrics import curve_from_report, round_auc

log = logging.getLogger(__name__)



class ResultsMismatch(IdentityMismatch):
    """The results folder holds samples of a run with other settings or inputs."""


def sample_key(sequence: str, scribble_idx: int) -> str:
    return f"{sequence}__{int(scribble_idx):03d}"


class ResultsWriter:
    """Writes each finished sample at once and atomically; knows which samples are done."""

    def __init__(self, out_dir: str | Path, identity: dict[str, Any]):
        """identity: every setting and input that decides the results (see
        :func:`interaction.evaluate.run_identity`); stored samples made with another identity are
        refused (:class:`ResultsMismatch`), never mixed with new ones."""
        self.out_dir = Path(out_dir)
        self.samples_dir = self.out_dir / "samples"
        has = self.samples_dir.is_dir() and any(self.samples_dir.glob("*.json"))
        try:
            self.identity = check_identity(
                self.out_dir / "run.json", identity, has_outputs=has, what=str(self.out_dir),
                fix=f"choose another results_dir, or delete {self.out_dir} to run it again with the new settings")
        except IdentityMismatch as exc:
            raise ResultsMismatch(str(exc)) from None
        self.samples_dir.mkdir(parents=True, exist_ok=True)

    def done(self, sequence: str, scribble_idx: int) -> bool:
        k = sample_key(sequence, scribble_idx)
        return (self.samples_dir / f"{k}.json").exists() and (self.samples_dir / f"{k}.csv").exists()

    def add(self, record: SampleRecord, report: pd.DataFrame) -> None:
        k = sample_key(record.sequence, record.scribble_idx)
        # The CSV first: a sample counts as done only when its JSON exists.
        atomic_write_text(self.samples_dir / f"{k}.csv", report.to_csv(index=False))
        atomic_write_json(self.samples_dir / f"{k}.json", record.to_json(), indent=None)

    def load(self, samples: Sequence[tuple[str, int]]) -> tuple[list[SampleRecord], pd.DataFrame]:
        records, reports = [], []
        for seq, idx in samples:
            k = sample_key(seq, idx)
            records.append(SampleRecord.from_json(json.loads((self.samples_dir / f"{k}.json").read_text())))
            reports.append(pd.read_csv(self.samples_dir / f"{k}.csv"))
        report = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame()
        return records, report

    def finalize(self, spec: DatasetSpec, split: str, samples: Sequence[tuple[str, int]], rounds: int,
                 config: dict[str, Any]) -> dict[str, Any]:
        """Build summary.json and report.csv from the stored samples."""
        records, report = self.load(samples)
        curve = curve_from_report(report, rounds)
        summary: dict[str, Any] = {
            "auc": round_auc(curve),
            "curve": {"J_AND_F": curve},
            "final": curve[-1],
            "num_samples": len(records),
        }
        davis = davis_summary(spec, split, samples, report, rounds)
        if davis is not None:
            summary["davisinteractive"] = davis
        summary["rounds"] = _round_stats(records, rounds)
        summary["samples"] = [{
            "sequence": r.sequence, "scribble_idx": r.scribble_idx, "first_frame": r.first_frame,
            "num_frames": r.num_frames, "curve": r.curve, "auc": round_auc(r.curve),
            "frames": [x.frame for x in r.rounds],
            "ranks": [x.next_rank for x in r.rounds[:-1]],
        } for r in records]
        summary["config"] = config
        buf = io.StringIO()
        report.to_csv(buf, index=False)
        atomic_write_text(self.out_dir / "report.csv", buf.getvalue())
        atomic_write_json(self.out_dir / "summary.json", summary)
        return summary


def _round_stats(records: list[SampleRecord], rounds: int) -> list[dict[str, Any]]:
    """Per round, averaged over samples: seconds per component, rank of the chosen frame by
    ground truth (0 = worst; relative rank in [0, 1] too), and, in the wild setting, the
    correlation between predicted and true per-frame J&F."""
    stats = []
    for i in range(rounds):
        rs = [r.rounds[i] for r in records if len(r.rounds) > i]
        if not rs:
            break
        entry: dict[str, Any] = {"round": i + 1, "jf_sample_mean": float(np.mean([x.jf for x in rs]))}
        for k in ("backend", "quality", "recommender", "evaluator", "round"):
            entry[f"seconds_{k}"] = float(np.mean([x.timings.get(k, 0.0) for x in rs]))
        ranks = [(x.next_rank, len(x.frame_jf)) for x in rs if x.next_rank is not None]
        if ranks:
            entry["chosen_rank"] = float(np.mean([a for a, _ in ranks]))
            entry["chosen_rank_relative"] = float(np.mean([a / max(n - 1, 1) for a, n in ranks]))
        pear = [x.quality_pearson for x in rs if x.quality_pearson is not None]
        if pear:
            entry["quality_pearson"] = float(np.mean(pear))
            entry["quality_mae"] = float(np.mean([np.abs(x.quality - x.frame_jf).mean() for x in rs
                                                  if x.quality is not None]))
        stats.append(entry)
    return stats


def davis_summary(spec: DatasetSpec, split: str, samples: Sequence[tuple[str, int]], report: pd.DataFrame,
                  rounds: int) -> dict[str, Any] | None:
    """davisinteractive's own global summary (time-based AUC, J&F at 60 s, curve) over the stored
    report. Only defined when ``samples`` cover every scribble of their sequences, since the
    package fills missing samples with zeros."""
    seqs = sorted({s for s, _ in samples})
    expected = {(s, i) for s in seqs for i in range(1, int(spec.sequences[s]["num_scribbles"]) + 1)}
    if set(map(tuple, samples)) != expected or report.empty:
        return None
    with registered(spec, seqs, split) as subset:
        service = dc.EvaluationService(subset, davis_root=str(spec.root), max_i=rounds)
        return service.summarize_report(report.copy())
