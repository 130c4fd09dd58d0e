"""Samples over workers: one process (as always) or a pool of Ray actors, locally or on a cluster.

Samples are independent episodes (:func:`interaction.loop.run_episodes` draws from a generator that
depends only on (seed, sequence, scribble)), so they can run anywhere in any order and give the same
records. :func:`run_jobs` runs a list of :class:`Job` and hands each result to the caller's callback in
the driver process, which writes it; with ``ordered=True`` the callbacks come in the order of the
jobs, so an appended CSV holds exactly the rows of a serial run, in the same order, and an
interrupted run leaves a prefix of it (what ``resume`` expects).

``Fanout(workers=1)`` (the default) runs the jobs in this process with the parts built once, as the
scripts always did, and never imports Ray. ``workers=N`` starts a local Ray instance of N CPUs (no
dashboard, no usage report, bound to 127.0.0.1) with N actors; ``ray_address=...`` joins a running
cluster instead (the project and the data must be at the same path on every node). Each actor
builds its parts (backend, selector, quality function) once, with ``build``, and gets
``gpus_per_worker`` of a GPU when the device is CUDA. An actor that dies is restarted and its
sample run again (``max_restarts``/``max_task_retries``); the other samples are not affected.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import pandas as pd
from tqdm.auto import tqdm

from datasets.layout import DatasetSpec
from interaction.loop import QualityFn, SampleRecord, Selector, run_episodes
from VOS.base import VOSBackend

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


class Parts(NamedTuple):
    """What one worker runs episodes with (built once per worker)."""

    backend: VOSBackend
    selector: Selector
    quality_fn: QualityFn | None = None


class Job(NamedTuple):
    """One episode: a sample and the loop's seed for it."""

    sequence: str
    scribble_idx: int
    seed: int


@dataclass(frozen=True)
class EpisodeSettings:
    """The loop's settings shared by every job of a run (see :func:`interaction.loop.run_episodes`)."""

    spec: DatasetSpec
    split: str
    rounds: int
    setting: str = "oracle"
    min_nb_nodes: int = 4
    window: int | None = None


@dataclass(frozen=True)
class Fanout:
    """Where samples run. workers: processes (1 = this one, without Ray); ray_address: a running
    Ray cluster to join (``auto`` or ``host:port``); gpus_per_worker: share of a GPU per worker when
    the device is CUDA (0 on CPU); max_retries: runs of a sample after its worker died."""

    workers: int = 1
    ray_address: str | None = None
    gpus_per_worker: float = 0.0
    max_retries: int = 3
    ray_init: dict[str, Any] = field(default_factory=dict)   # extra ray.init arguments (tests)

    def __post_init__(self) -> None:
        if int(self.workers) < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if float(self.gpus_per_worker) < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")

    @property
    def serial(self) -> bool:
        return int(self.workers) <= 1 and not self.ray_address

    @classmethod
    def from_config(cls, workers: int = 1, ray_address: str | None = None, gpus_per_worker: float = 0.0,
                    device: Any = "cpu") -> "Fanout":
        """The scripts' settings; GPUs are asked for only when the device is CUDA."""
        cuda = str(getattr(device, "type", device)).startswith("cuda")
        return cls(int(workers), ray_address or None, float(gpus_per_worker) if cuda else 0.0)


RoundCollector = Callable[[], Any]
"""Builds, in a worker, an object with ``on_round(record, round_record, out)`` (called after every
round, where the round's probability maps are) and ``take() -> Any`` (what it gathered for the
sample, handed to the driver with the sample's result)."""


def _run_job(parts: Parts, settings: EpisodeSettings, job: Job, collector: Any = None
             ) -> tuple[SampleRecord, pd.DataFrame, Any]:
    rec = report = None

    def keep(r, rep) -> None:
        nonlocal rec, report
        rec, report = r, rep

    run_episodes(settings.spec, [(job.sequence, job.scribble_idx)], settings.split, parts.backend, parts.selector,
                 settings.rounds, setting=settings.setting, quality_fn=parts.quality_fn,
                 min_nb_nodes=settings.min_nb_nodes, seed=job.seed, window=settings.window,
                 on_round=collector.on_round if collector is not None else None, on_sample=keep, progress=False)
    return rec, report, collector.take() if collector is not None else None


class _Worker:
    """A Ray actor: parts built once, then one job after another."""

    def __init__(self, build: Callable[[], Parts], settings: EpisodeSettings,
                 collect: RoundCollector | None) -> None:
        import cv2
        import torch

        # one CPU per worker (Ray sets OMP_NUM_THREADS to it); OpenCV's own threads would not follow
        threads = max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        self.parts, self.settings = Parts(*build()), settings
        self.collector = collect() if collect is not None else None

    def run(self, job: Job) -> tuple[SampleRecord, pd.DataFrame, Any]:
        return _run_job(self.parts, self.settings, job, self.collector)

    def pid(self) -> int:
        return os.getpid()


def _start_ray(fan: Fanout):
    """Ray connected to a local instance started here (or to the cluster at ``ray_address``); True
    unless Ray was already initialised by the caller (then it is left as it is)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")     # no usage report over the network
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    import ray

    if ray.is_initialized():
        return ray, False
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    if fan.ray_address:
        # the cluster's workers import the project from the same path as here
        env = {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}
        ray.init(address=fan.ray_address, runtime_env={"env_vars": env}, log_to_driver=False, **fan.ray_init)
        return ray, True        # ray.shutdown() at the end only disconnects: the cluster stays
    # a local instance's processes inherit this environment (faster than a runtime_env)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = path
    try:
        opts = dict(num_cpus=int(fan.workers), include_dashboard=False, _node_ip_address="127.0.0.1",
                    log_to_driver=False, configure_logging=False)
        opts.update(fan.ray_init)
        ray.init(**opts)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return ray, True


def run_jobs(jobs: Sequence[Job], settings: EpisodeSettings, on_result: Callable[[Job, SampleRecord, pd.DataFrame, Any], None],
             fan: Fanout, *, build: Callable[[], Parts] | None = None, parts: Parts | None = None,
             collect: RoundCollector | None = None, ordered: bool = False, progress: bool = True,
             desc: str = "samples") -> None:
    """Run every job and call ``on_result(job, record, report, collected)`` in this process.

    Serial (``fan.serial``): with ``parts`` (or ``build()`` once) in this process. Otherwise on Ray
    actors that each call ``build`` (it must be picklable, e.g. a module-level function or a
    ``functools.partial`` of one). ``ordered``: callbacks in job order (results that finish early
    wait for the ones before them)."""
    jobs = list(jobs)
    if not jobs:
        return
    bar = tqdm(total=len(jobs), desc=desc, unit="sample", disable=not progress, dynamic_ncols=True)
    try:
        if fan.serial:
            p = parts if parts is not None else Parts(*build())
            collector = collect() if collect is not None else None
            for job in jobs:
                bar.set_postfix_str(f"{job.sequence}#{job.scribble_idx}")
                on_result(job, *_run_job(p, settings, job, collector))
                bar.update()
            return
        if build is None:
            raise ValueError("running on several workers needs a picklable `build` for the parts")
        _run_on_ray(jobs, settings, on_result, fan, build, collect, ordered, bar)
    finally:
        bar.close()


def _run_on_ray(jobs: list[Job], settings: EpisodeSettings, on_result, fan: Fanout, build, collect,
                ordered: bool, bar) -> None:
    ray, started = _start_ray(fan)
    try:
        actor = ray.remote(num_cpus=1, num_gpus=float(fan.gpus_per_worker), max_restarts=int(fan.max_retries),
                           max_task_retries=int(fan.max_retries))(_Worker)
        n = int(fan.workers)
        if fan.ray_address and n <= 1:        # a cluster: one worker per CPU it has
            n = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = min(n, len(jobs))
        workers = [actor.remote(build, settings, collect) for _ in range(n)]
        pending: dict[Any, tuple[int, Any]] = {}
        queue = list(range(len(jobs)))
        for w in workers:
            if queue:
                i = queue.pop(0)
                pending[w.run.remote(jobs[i])] = (i, w)
        done: dict[int, tuple] = {}
        next_out = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, w = pending.pop(ready[0])
            result = ray.get(ready[0])
            if queue:
                j = queue.pop(0)
                pending[w.run.remote(jobs[j])] = (j, w)
            if not ordered:
                on_result(jobs[i], *result)
            else:
                done[i] = result
                while next_out in done:
                    on_result(jobs[next_out], *done.pop(next_out))
                    next_out += 1
            bar.set_postfix_str(f"{jobs[i].sequence}#{jobs[i].scribble_idx}")
            bar.update()
    finally:
        if started:
            ray.shutdown()
