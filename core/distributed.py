"""Data-parallel training under ``torchrun`` (DistributedDataParallel: gloo on CPU, nccl on GPU).

``torchrun --nproc_per_node=N script.py ...`` starts N processes with RANK, LOCAL_RANK and
WORLD_SIZE set; :func:`init_from_env` joins them into one process group (once) and returns who this
process is; without torchrun it returns the single-process :data:`SINGLE`, and nothing changes.

A training step over N processes equals one step of a single process over the same global batch
when (a) the N shards of every global batch are the single process's batch split in N equal parts
(:class:`GlobalBatchShards`), (b) gradients are averaged over the processes (DDP does), and
(c) batch normalisation normalises with the statistics of the whole global batch: on GPU
``torch.nn.SyncBatchNorm``; on CPU, where it is not available, :class:`GlobalBatchNorm2d`.
The results then differ only by the order of floating-point sums.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process in the group: rank in [0, world_size), local_rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """The process that logs, evaluates and writes files."""
        return self.rank == 0


SINGLE = DistInfo()


def init_from_env(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the torchrun group if the environment describes one (WORLD_SIZE > 1). Returns this
    process's :class:`DistInfo` and its device (``cuda:LOCAL_RANK`` when ``device`` is CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, device
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    log.info("process %d of %d (%s)", info.rank, info.world_size, device)
    return info, device


def sum_over_processes(values: list[float], info: DistInfo, device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over all processes (the values themselves without a group)."""
    if not info.active:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


class GlobalBatchShards(torch.utils.data.Sampler):
    """Batches of indices for one process: the global batches (a permutation of ``range(n)`` drawn
    with ``seed``, cut in ``batch_size`` chunks, the last one dropped if short and ``drop_last``),
    each split in ``world_size`` equal, interleaved parts, of which this process takes part
    ``rank``. With one process these are the global batches themselves (the training uses this
    sampler alone and in a group, so both see the same batches).

    The global batch needs ``batch_size`` divisible by ``world_size``. With ``drop_last`` False
    (a dataset no larger than one batch) the one batch is cut to a multiple of ``world_size``."""

    def __init__(self, n: int, batch_size: int, info: DistInfo, seed: int, drop_last: bool) -> None:
        if batch_size % info.world_size:
            raise ValueError(f"batch_size {batch_size} must be divisible by the {info.world_size} processes")
        self.n, self.batch_size, self.info, self.seed, self.drop_last = n, batch_size, info, int(seed), drop_last

    def _batches(self) -> list[list[int]]:
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        out = [perm[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and out and len(out[-1]) < self.batch_size:
            out.pop()
        w = self.info.world_size
        out = [b[:len(b) - len(b) % w] for b in out]
        return [b[self.info.rank::w] for b in out if b]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training inside a process group, normalises with the mean and variance
    of the global batch (sums all-reduced, with gradients through them), updating the running
    statistics as one process over that batch would (unbiased variance). Otherwise plain BatchNorm2d.
    For CPU (gloo), where ``torch.nn.SyncBatchNorm`` is not available."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce  # the one with gradients

        C = x.shape[1]
        count = torch.tensor([x.numel() / C], dtype=x.dtype, device=x.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            stats = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:C] / n
        var = (stats[C:2 * C] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm2d normalising over the global batch (SyncBatchNorm on GPU,
    :class:`GlobalBatchNorm2d` on CPU). Parameters and buffers are the same objects, so the state
    dict keys and an optimizer built on ``module.parameters()`` stay valid."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)

    def convert(m: nn.Module) -> nn.Module:
        if isinstance(m, nn.BatchNorm2d) and not isinstance(m, GlobalBatchNorm2d):
            g = GlobalBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            if m.affine:
                g.weight, g.bias = m.weight, m.bias
            if m.track_running_stats:
                g.running_mean, g.running_var = m.running_mean, m.running_var
                g.num_batches_tracked = m.num_batches_tracked
            g.train(m.training)
            return g
        for name, child in m.named_children():
            setattr(m, name, convert(child))
        return m

    return convert(module)


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``module`` for training: as it is alone, else DistributedDataParallel over the group."""
    if not info.active:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # find_unused_parameters: the published QA network has parameters its forward never uses
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


__all__ = ["DistInfo", "GlobalBatchNorm2d", "GlobalBatchShards", "SINGLE", "barrier", "init_from_env",
           "sum_over_processes", "sync_batchnorm", "wrap_ddp"]
