"""One evaluation run: every sample of a split, resumable, ending in summary.json."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from datasets.layout import DatasetSpec, check_files, resolve
from interaction.loop import QualityFn, Selector, run_episodes
from interaction.results import ResultsWriter
from VOS.base import VOSBackend

log = logging.getLogger(__name__)


def samples_of(spec: DatasetSpec, split: str, sequences: Sequence[str] | None = None,
               scribbles: Sequence[int] | None = None) -> list[tuple[str, int]]:
    """(sequence, scribble index) pairs of ``split``, in a fixed order."""
    out = []
    for s in spec.subset(split, sequences):
        n = int(spec.sequences[s]["num_scribbles"])
        out += [(s, i) for i in range(1, n + 1) if scribbles is None or i in scribbles]
    return out


def checked_samples_of(spec: DatasetSpec, split: str,
                       sequences: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """The samples of ``split`` after checking every file a session will read; a clear error when
    there is nothing to run or a file is missing."""
    samples = samples_of(spec, split, sequences)
    if not samples:
        raise ValueError(f"no samples: split '{split}' of {spec.root} has no sequences"
                         + (f" among {list(sequences)}" if sequences else ""))
    check_files(spec, sorted({s for s, _ in samples}))
    return samples


def checked_samples(dataset: str, data_dir: str | Path, split: str,
                    sequences: Sequence[str] | None = None) -> tuple[DatasetSpec, list[tuple[str, int]]]:
    """Resolve ``dataset`` (a known name under ``data_dir`` or a path), then :func:`checked_samples_of`."""
    spec = resolve(dataset, data_dir)
    return spec, checked_samples_of(spec, split, sequences)


def evaluate(spec: DatasetSpec, split: str, backend: VOSBackend, selector: Selector, out_dir: str | Path, *,
             setting: str, rounds: int, seed: int, min_nb_nodes: int, quality_fn: QualityFn | None = None,
             sequences: Sequence[str] | None = None, identity: dict[str, Any] | None = None,
             config: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the evaluation and write ``out_dir/summary.json``; returns the summary.

    Samples already stored in ``out_dir/samples`` by an interrupted run with the same settings are
    not run again; the summary is rebuilt from all stored samples.
    """
    samples = checked_samples_of(spec, split, sequences)
    writer = ResultsWriter(out_dir, identity or {})
    todo = [s for s in samples if not writer.done(*s)]
    if len(todo) < len(samples):
        log.info("resuming: %d of %d samples already in %s", len(samples) - len(todo), len(samples), out_dir)
    run_episodes(spec, todo, split, backend, selector, rounds, setting=setting, quality_fn=quality_fn,
                 min_nb_nodes=min_nb_nodes, seed=seed, on_sample=writer.add, progress=progress,
                 desc=f"{selector.name}/{setting}")
    return writer.finalize(spec, split, samples, rounds, config or {})
