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
#: the ``ours`` agents: the published MDP and DQN (``weights/agent.pt`` layout) or the v2 ranker trained by
#: imitation (``agent.imitation``, an ``agent-v2`` checkpoint of ``train_agent_v2.py``)
AGENTS = ("published", "v2")


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


def check_agent_weights(path: str | Path, agent: str, setting: str, paper: bool = False) -> Path:
    """The agent's weights file for ``method=ours`` after checking that it is the kind ``agent`` says
    (``published``: anything but an ``agent-v2`` checkpoint, loaded strictly later; ``v2``: an ``agent-v2``
    checkpoint trained for ``setting`` when it records one), so that a v2 run never writes under the
    published agent's ``ours`` nor the other way round. ``paper``: the published evaluation, which
    takes the published agent only."""
    from agent.imitation import checkpoint_config
    from core.checkpoint import CheckpointError

    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, got '{agent}'")
    if paper and agent != "published":
        raise ValueError(f"`with paper` evaluates the published agent (weights/agent.pt layout) and cannot run "
                         f"agent={agent} ({path}); drop `paper` to run the v2 agent")
    path = Path(path)
    if not path.is_file():
        how = ("train it (`python train_agent_v2.py`)" if agent == "v2" else
               "train them (`python produce_reward.py && python pretrain_agent.py && python train_agent.py`) or "
               "place the published agent.pt there (README, 'Weights')")
        raise FileNotFoundError(f"method=ours agent={agent} needs the agent's weights at {path}: {how}")
    try:
        kind, trained = checkpoint_config(path)
    except CheckpointError:
        if agent == "v2":
            raise
        kind, trained = None, {}    # the published agent's loader says what is wrong with the file
    if agent == "published" and kind == "agent-v2":
        if paper:
            raise ValueError(f"`with paper` evaluates the published agent, but {path} is an agent-v2 checkpoint "
                             f"(train_agent_v2.py); give the published agent.pt as agent_weights, or drop `paper` "
                             f"and add agent=v2 (results under ours-v2)")
        raise ValueError(f"{path} is an agent-v2 checkpoint (train_agent_v2.py): add agent=v2 to run it "
                         f"(results under ours-v2, apart from the published agent's ours)")
    if agent == "v2":
        if kind != "agent-v2":
            raise ValueError(f"agent=v2 needs an agent-v2 checkpoint (train_agent_v2.py), but {path} is "
                             f"{'a ' + kind + ' checkpoint' if kind else 'not one (the published agent layout?)'}; "
                             f"drop agent=v2 for the published agent, or give agent_weights={path.parent / f'agent_v2_{setting}.pt'}")
        if trained.get("setting", setting) != setting:
            raise ValueError(f"{path} is the v2 agent trained for setting={trained['setting']}, not {setting}; give "
                             f"agent_weights={path.parent / f'agent_v2_{setting}.pt'} (train_agent_v2.py writes one per setting)")
    return path


def make_selector(method: str, setting: str, agent_weights: str | Path, device: torch.device,
                  greedy_candidates: int = 0, *, agent: str = "published", paper: bool = False,
                  qa: Any = None, tap: Any = None) -> Selector:
    """The selector of ``method``; for ``ours`` the agent ``agent`` from ``agent_weights``
    (:func:`check_agent_weights`). The v2 agent reads the round's features from ``qa`` (wild: the
    :class:`agent.imitation.FeatureQuality` of the run) or ``tap`` (oracle: an
    :class:`agent.lookahead.BackendTap` around the run's backend)."""
    selector = None
    if method == "ours":
        from agent.recommender import AgentSelector, selector_from_weights

        path = check_agent_weights(agent_weights, agent, setting, paper)
        if agent == "v2":
            selector = selector_from_weights(path, "cpu", qa=qa, tap=tap)   # tiny nets fed numpy on the CPU
        else:
            selector = AgentSelector.from_weights(path, device)
    return build_selector(method, setting=setting, agent=selector, greedy_candidates=greedy_candidates)


def method_dir(method: str, agent: str = "published") -> str:
    """The results folder's method name: ``ours-v2`` for the v2 agent, else the method."""
    return "ours-v2" if method == "ours" and agent == "v2" else method


def results_path(results_dir: str | Path, vos: str, setting: str, dataset_name: str, method: str) -> Path:
    """``results/{VOS}/{setting}/{dataset}/{method}`` (VOS spelled as in the paper)."""
    return Path(results_dir) / display_name(vos) / setting / dataset_name / method


def describe(summary: dict[str, Any]) -> str:
    c = summary["curve"]["J_AND_F"]
    return f"round-AUC {summary['auc']:.4f}, J&F after round {len(c) - 1}: {c[-1]:.4f} ({summary['num_samples']} samples)"


def build_eval_parts(vos: str, device: str, method: str, setting: str, agent_weights: str | Path,
                     qa_weights: str | Path, qa_batch_size: int = 16, qa_record: bool = True,
                     greedy_candidates: int = 0, vos_options: dict | None = None, agent: str = "published",
                     feature_qa_weights: str | Path | None = None, paper: bool = False):
    """(backend, selector, quality_fn) of an evaluation, from plain picklable settings: what
    ``eval_agent.py`` builds in its process, and each worker of a fanned-out run in its own.

    ``method=ours agent=v2``: the v2 ranker; in wild its quality is the feature QA model at
    ``feature_qa_weights`` (what the wild ranker was trained on) in place of the QA network, in oracle
    the backend is wrapped in a :class:`agent.lookahead.BackendTap` so that the ranker sees the round's
    probabilities."""
    from core.device import resolve_device
    from VOS.registry import build_backend, canonical

    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, got '{agent}'")
    dev = resolve_device(device)
    backend = build_backend(canonical(vos), dev, **dict(vos_options or {}))
    if method == "ours" and agent == "v2":
        return _v2_parts(backend, setting, agent_weights, feature_qa_weights, paper)
    selector = make_selector(method, setting, agent_weights, dev, greedy_candidates, agent=agent, paper=paper)
    quality_fn = make_quality_fn(setting, method, qa_weights, dev, qa_batch_size,
                                 record=qa_record or selector.needs_quality)
    return backend, selector, quality_fn


def _v2_parts(backend, setting: str, agent_weights: str | Path, feature_qa_weights: str | Path | None,
              paper: bool):
    check_agent_weights(agent_weights, "v2", setting, paper)
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got '{setting}'")
    if setting == "oracle":
        from agent.lookahead import BackendTap

        tap = BackendTap(backend)
        return tap, make_selector("ours", setting, agent_weights, "cpu", agent="v2", tap=tap), None
    from agent.imitation import FeatureQuality, load_checkpoint

    path = Path(feature_qa_weights) if feature_qa_weights else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"setting=wild method=ours agent=v2 needs the feature QA model at {path}: train it "
                                f"with the v2 agent (`python train_agent_v2.py`)")
    qa = FeatureQuality(load_checkpoint(path, "feature-qa", "cpu"), source=backend)
    return backend, make_selector("ours", setting, agent_weights, "cpu", agent="v2", qa=qa), qa


def build_episode_parts(vos: str, device: str, method: str, vos_options: dict | None = None):
    """(backend, selector, None) for the training runs' oracle episodes (``random`` for the rewards,
    ``worst`` for the QA data), from plain picklable settings (each Ray worker builds its own)."""
    from core.device import resolve_device
    from VOS.registry import build_backend, canonical

    backend = build_backend(canonical(vos), resolve_device(device), **dict(vos_options or {}))
    return backend, build_selector(method, setting="oracle"), None
