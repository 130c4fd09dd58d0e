"""Build the parts of a run from plain settings (scripts unpack their sacred config into these)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from agent.selection import build_selector
from interaction.loop import QualityFn, Selector
from VOS.registry import display_name

log = logging.getLogger(__name__)

SETTINGS = ("oracle", "wild")


def make_quality_fn(setting: str, method: str, qa_weights: str | Path, device: torch.device,
                    batch_size: int = 16, required: bool | None = None, record: bool = True) -> QualityFn | None:
    """The QA network's per-frame quality for the wild setting (None in oracle).

    In the wild setting, methods that read quality (worst, ours) need the QA weights; random and
    linspace do not, but if the weights exist and ``record`` is set the QA network still runs so
    that its accuracy is recorded beside them.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got '{setting}'")
    if setting == "oracle":
        return None
    needs = method in ("worst", "ours") if required is None else required
    if not needs and not record:
        return None
    path = Path(qa_weights)
    if not path.is_file():
        if needs:
            raise FileNotFoundError(
                f"setting=wild method={method} needs the quality-assessment network at {path}: "
                f"train it (`python generate_data.py && python quality_assessment.py`) or place the "
                f"published assess_net.pt there (README, 'Weights')")
        log.info("no QA weights at %s: wild %s runs without recording QA accuracy", path, method)
        return None
    from agent.quality import QualityAssessor, load_quality_net

    return QualityAssessor(load_quality_net(path, device), device, batch_size=batch_size)


def make_selector(method: str, setting: str, agent_weights: str | Path, device: torch.device,
                  greedy_candidates: int = 0) -> Selector:
    agent = None
    if method == "ours":
        from agent.recommender import AgentSelector

        path = Path(agent_weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"method=ours needs the agent's weights at {path}: train them (`python produce_reward.py && "
                f"python pretrain_agent.py && python train_agent.py`) or place the published agent.pt there "
                f"(README, 'Weights')")
        agent = AgentSelector.from_weights(path, device)
    return build_selector(method, setting=setting, agent=agent, greedy_candidates=greedy_candidates)


def results_path(results_dir: str | Path, vos: str, setting: str, dataset_name: str, method: str) -> Path:
    """``results/{VOS}/{setting}/{dataset}/{method}`` (VOS spelled as in the paper)."""
    return Path(results_dir) / display_name(vos) / setting / dataset_name / method


def describe(summary: dict[str, Any]) -> str:
    c = summary["curve"]["J_AND_F"]
    return f"round-AUC {summary['auc']:.4f}, J&F after round {len(c) - 1}: {c[-1]:.4f} ({summary['num_samples']} samples)"


def build_eval_parts(vos: str, device: str, method: str, setting: str, agent_weights: str | Path,
                     qa_weights: str | Path, qa_batch_size: int = 16, qa_record: bool = True,
                     greedy_candidates: int = 0, vos_options: dict | None = None):
    """(backend, selector, quality_fn) of an evaluation, from plain picklable settings: what
    ``eval_agent.py`` builds in its process, and each worker of a fanned-out run in its own."""
    from core.device import resolve_device
    from VOS.registry import build_backend, canonical

    dev = resolve_device(device)
    selector = make_selector(method, setting, agent_weights, dev, greedy_candidates)
    quality_fn = make_quality_fn(setting, method, qa_weights, dev, qa_batch_size,
                                 record=qa_record or selector.needs_quality)
    backend = build_backend(canonical(vos), dev, **dict(vos_options or {}))
    return backend, selector, quality_fn


def build_episode_parts(vos: str, device: str, method: str, vos_options: dict | None = None):
    """(backend, selector, None) for the training runs' oracle episodes (``random`` for the rewards,
    ``worst`` for the QA data), from plain picklable settings (each Ray worker builds its own)."""
    from core.device import resolve_device
    from VOS.registry import build_backend, canonical

    backend = build_backend(canonical(vos), resolve_device(device), **dict(vos_options or {}))
    return backend, build_selector(method, setting="oracle"), None
