"""One evaluation run: every sample of a split, resumable, ending in summary.json."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from core.identity import file_ref, state_sha256
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


def parts_identity(obj: Any) -> dict[str, Any]:
    """What a selector, backend or quality function contributes to a run's identity: its own
    ``identity()`` when it has one, else its name, its options and (as :func:`core.identity.file_ref`)
    the weight files it lists in ``weight_files``."""
    if obj is None:
        return {}
    if callable(getattr(obj, "identity", None)):
        return dict(obj.identity())
    out: dict[str, Any] = {"name": getattr(obj, "name", type(obj).__name__)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, torch.nn.Module):
                out[f.name] = {"weights_sha256": state_sha256(v)}
            elif v is None or isinstance(v, (bool, int, float, str, list, tuple, dict)):
                out[f.name] = v
    options = getattr(obj, "options", None)
    if isinstance(options, dict):
        out["options"] = options
    files = getattr(obj, "weight_files", None)
    if files:
        out["weight_files"] = [file_ref(f) for f in files]
    elif isinstance(getattr(obj, "net", None), torch.nn.Module):     # weights given in memory
        out["weights_sha256"] = state_sha256(obj.net)
    return out


def run_identity(spec: DatasetSpec, split: str, samples: Sequence[tuple[str, int]], backend: VOSBackend,
                 selector: Selector, quality_fn: QualityFn | None, *, setting: str, rounds: int, seed: int,
                 min_nb_nodes: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that decides an evaluation's results: the settings, the samples with their
    metadata, the backend (name, options, sha256 of its weights), the selector (its parameters, the
    agent's weights' sha256) and the wild setting's QA network (sha256 of its weights).
    ``extra``: more entries from the caller (e.g. the script's names for the settings)."""
    seqs = sorted({s for s, _ in samples})
    ident: dict[str, Any] = dict(extra or {})
    ident.update({
        "dataset": spec.name, "split": split, "setting": setting, "rounds": int(rounds), "seed": int(seed),
        "min_nb_nodes": int(min_nb_nodes), "samples": [list(s) for s in samples],
        "metadata": {s: spec.sequences[s] for s in seqs},
        "backend": parts_identity(backend), "selector": parts_identity(selector),
        "quality": parts_identity(quality_fn) if quality_fn is not None else None,
    })
    return ident


def evaluate(spec: DatasetSpec, split: str, backend: VOSBackend, selector: Selector, out_dir: str | Path, *,
             setting: str, rounds: int, seed: int, min_nb_nodes: int, quality_fn: QualityFn | None = None,
             sequences: Sequence[str] | None = None, identity: dict[str, Any] | None = None,
             config: dict[str, Any] | None = None, progress: bool = True, fanout: Any = None,
             build: Any = None) -> dict[str, Any]:
    """Run (or resume) the evaluation and write ``out_dir/summary.json``; returns the summary.

    ``fanout`` (an :class:`interaction.parallel.Fanout` with several workers or a Ray address) runs
    the samples on Ray workers, each with parts made by ``build()`` (picklable; e.g.
    ``functools.partial(interaction.factory.build_eval_parts, ...)``); the stored samples and the
    summary are the same as a serial run's.

    Samples already stored in ``out_dir/samples`` by an interrupted run with the same identity are
    not run again; the summary is rebuilt from all stored samples. The identity is always built
    from the arguments (:func:`run_identity`: settings, samples, backend options and weights'
    sha256, selector, QA weights' sha256); ``identity`` only adds entries. Stored samples of
    another identity raise :class:`interaction.results.ResultsMismatch`.
    """
    samples = checked_samples_of(spec, split, sequences)
    ident = run_identity(spec, split, samples, backend, selector, quality_fn, setting=setting, rounds=rounds,
                         seed=seed, min_nb_nodes=min_nb_nodes, extra=identity)
    writer = ResultsWriter(out_dir, ident)
    todo = [s for s in samples if not writer.done(*s)]
    if len(todo) < len(samples):
        log.info("resuming: %d of %d samples already in %s", len(samples) - len(todo), len(samples), out_dir)
    if fanout is not None and not fanout.serial:
        from interaction.parallel import EpisodeSettings, Job, run_jobs

        run_jobs([Job(s, int(i), int(seed)) for s, i in todo],
                 EpisodeSettings(spec, split, rounds, setting=setting, min_nb_nodes=min_nb_nodes),
                 lambda _job, rec, report, _extra: writer.add(rec, report), fanout, build=build,
                 progress=progress, desc=f"{selector.name}/{setting}")
    else:
        run_episodes(spec, todo, split, backend, selector, rounds, setting=setting, quality_fn=quality_fn,
                     min_nb_nodes=min_nb_nodes, seed=seed, on_sample=writer.add, progress=progress,
                     desc=f"{selector.name}/{setting}")
    return writer.finalize(spec, split, samples, rounds, config or {})
