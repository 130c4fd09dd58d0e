"""The v2 recommender and the feature QA model: small networks over per-frame features, trained by
supervised learning on episodes labelled by the oracle look-ahead.

- :class:`FeatureQANet`: per (frame, object), the object features of ``agent.features`` at t, t-1, t+1
  and their mean over the video (4 x F_OBJ inputs) -> predicted J&F in [0, 1] (sigmoid). Trained by MSE
  on the true per-object J&F of maps from several rules and rounds (:func:`train_feature_qa`).
- :class:`RankNet` (``agent=v2``): state (N, T, F_V2) -> one score per frame (N, T); per frame an MLP,
  a bidirectional LSTM over the frames, an MLP head. Trained to rank candidate frames as the oracle
  look-ahead does (:func:`train_ranker`): for each decision of a collected episode, the candidates'
  one-round gains g_c (video J&F after annotating c, minus now) give the target distribution
  softmax(z(g)/tau) (z: standardised within the decision), and the loss is the cross-entropy of the
  net's softmax over the same candidates (a listwise learning-to-rank loss, ListNet).
- :class:`RankEnsemble` (the default ``agent=v2`` weights): several RankNets trained alike from different
  seeds; their scores, each standardised over the video's frames, averaged. :class:`FeatureQAEnsemble`
  likewise for the feature QA model (the mean prediction).

Checkpoints are dicts ``{"kind": "feature-qa"|"agent-v2", "state_dict", "mean", "std", "config"}``
(input normalisation stored beside the weights); :func:`load_checkpoint` loads them strictly.
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from agent.features import F_OBJ, F_OBJ_IMG, F_V2, V2_DEFAULT_COLUMNS, agent_state_v2, object_features

log = logging.getLogger(__name__)


# -- networks ----------------------------------------------------------------------------------
class Normalise(nn.Module):
    """x -> (x - mean) / std with stored buffers (F,)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.numel())
        self.mean.copy_(torch.as_tensor(x.mean(axis=0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(x.std(axis=0), 1e-3), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def qa_inputs(obj_feats: np.ndarray) -> np.ndarray:
    """(T, K, F_OBJ) -> (T, K, 4 F_OBJ): features at t, t-1, t+1 (edge frames repeat themselves) and
    the video mean."""
    f = np.asarray(obj_feats, dtype=np.float32)
    prev = np.concatenate([f[:1], f[:-1]], axis=0)
    nxt = np.concatenate([f[1:], f[-1:]], axis=0)
    mean = np.broadcast_to(f.mean(axis=0, keepdims=True), f.shape)
    return np.concatenate([f, prev, nxt, mean], axis=-1)


class FeatureQANet(nn.Module):
    """(N, 4 F) inputs (:func:`qa_inputs` of the first ``features`` object features: F_OBJ without the
    image evidence, F_OBJ_IMG with it) -> (N,) predicted J&F in [0, 1]."""

    def __init__(self, hidden: int = 64, features: int = F_OBJ, dropout: float = 0.0) -> None:
        super().__init__()
        if features not in (F_OBJ, F_OBJ_IMG):
            raise ValueError(f"features must be {F_OBJ} or {F_OBJ_IMG}, got {features}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.features = int(features)
        #: dropout after each hidden ReLU while training (functional: no parameters, so the state_dict keys
        #: and any checkpoint are the same with or without it; in eval mode it does nothing)
        self.dropout = float(dropout)
        self.norm = Normalise(4 * features)
        self.mlp = nn.Sequential(nn.Linear(4 * features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        for layer in self.mlp:
            h = layer(h)
            if self.dropout > 0 and self.training and isinstance(layer, nn.ReLU):
                h = nn.functional.dropout(h, self.dropout, training=True)
        return torch.sigmoid(h).squeeze(-1)


class RankNet(nn.Module):
    """v2 agent: states (N, T, F_V2) -> frame scores (N, T) (higher = annotate first)."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.norm = Normalise(F_V2)
        # 1 = the feature is used, 0 = zeroed after normalisation (ablations); saved with the weights
        self.register_buffer("keep", torch.ones(F_V2))
        self.enc = nn.Sequential(nn.Linear(F_V2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.lstm = nn.LSTM(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if state.dim() != 3 or state.shape[-1] != F_V2:
            raise ValueError(f"state must be (N, T, {F_V2}), got {tuple(state.shape)}")
        x = self.enc(self.norm(state) * self.keep)
        h, _ = self.lstm(x)
        return self.head(torch.cat([x, h], dim=-1)).squeeze(-1)


class RankEnsemble(nn.Module):
    """``members`` RankNets: states (N, T, F_V2) -> the mean over members of each member's scores
    standardised over the T frames (one member: its scores, centred and scaled, so the same argmax)."""

    def __init__(self, members: int = 3, hidden: int = 64) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {members}")
        self.members = nn.ModuleList(RankNet(hidden) for _ in range(members))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        out = []
        for m in self.members:
            s = m(state)
            s = s - s.mean(dim=-1, keepdim=True)
            out.append(s / (s.std(dim=-1, keepdim=True, unbiased=False) + 1e-6))
        return torch.stack(out).mean(dim=0)


class FeatureQAEnsemble(nn.Module):
    """``members`` FeatureQANets trained alike from different seeds: the mean of their predictions."""

    def __init__(self, members: int = 5, hidden: int = 64, features: int = F_OBJ, dropout: float = 0.0) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {members}")
        self.features = int(features)
        self.dropout = float(dropout)
        self.members = nn.ModuleList(FeatureQANet(hidden, features, dropout) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


KINDS = {"feature-qa": FeatureQANet, "agent-v2": RankNet}
ENSEMBLES = {"feature-qa": FeatureQAEnsemble, "agent-v2": RankEnsemble}


def save_checkpoint(net: nn.Module, path: str | Path, config: dict | None = None) -> None:
    """Atomic save; an ensemble (:class:`RankEnsemble`, :class:`FeatureQAEnsemble`) is a checkpoint of its
    members' kind with ``members`` in its config."""
    config = dict(config or {})
    ens = next((k for k, c in ENSEMBLES.items() if isinstance(net, c)), None)
    if ens is not None:
        kind = ens
        config["members"] = len(net.members)
    else:
        kind = next(k for k, c in KINDS.items() if isinstance(net, c))
        config.pop("members", None)
    if kind == "feature-qa":
        config["features"] = int(net.features)
        config["dropout"] = float(net.dropout)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"kind": kind, "state_dict": net.state_dict(), "config": config}, tmp)
    tmp.replace(path)


def checkpoint_config(path: str | Path) -> tuple[str | None, dict]:
    """(kind, config) of a checkpoint: ``"feature-qa"``/``"agent-v2"`` and the config saved with it for this
    module's checkpoints, (None, {}) for any other torch file. An unreadable file raises
    :class:`core.checkpoint.CheckpointError` naming it."""
    from core.checkpoint import load

    obj = load(path, expected="a torch checkpoint", fix="train it again or copy it again")
    if not (isinstance(obj, dict) and isinstance(obj.get("kind"), str)):
        return None, {}
    return obj["kind"], dict(obj.get("config") or {})


def checkpoint_kind(path: str | Path) -> str | None:
    """``"feature-qa"``/``"agent-v2"`` for this module's checkpoints, None for anything else."""
    return checkpoint_config(path)[0]


def load_checkpoint(path: str | Path, kind: str, device: torch.device | str = "cpu") -> nn.Module:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} weights not found at {path}: train them with `python train_agent_v2.py`")
    obj = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        raise ValueError(f"{path} is not a {kind} checkpoint (kind {obj.get('kind') if isinstance(obj, dict) else None})")
    config = obj.get("config", {})
    args = {k: v for k, v in config.items() if k == "hidden" or (k in ("features", "dropout") and kind == "feature-qa")}
    net = ENSEMBLES[kind](int(config["members"]), **args) if "members" in config else KINDS[kind](**args)
    net.load_state_dict(obj["state_dict"], strict=True)
    net.source = str(path)      # the run identity hashes the file (interaction.evaluate.parts_identity)
    return net.to(device).eval()


# -- training ----------------------------------------------------------------------------------
def qa_loss(pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None,
            within: float = 0.0) -> torch.Tensor:
    """MSE of ``pred`` against ``target`` (N,), plus ``within`` x the MSE of the errors centred on their
    group's mean error (``groups`` (N,) ints; the part of the error a per-video offset cannot explain)."""
    err = pred - target
    loss = torch.mean(err ** 2)
    if within > 0 and groups is not None:
        _, inv = torch.unique(groups, return_inverse=True)
        n = torch.zeros(int(inv.max()) + 1, dtype=err.dtype).index_add_(0, inv, torch.ones_like(err))
        mean_err = torch.zeros_like(n).index_add_(0, inv, err) / n
        loss = loss + within * torch.mean((err - mean_err[inv]) ** 2)
    return loss


def train_feature_qa(x: np.ndarray, y: np.ndarray, *, epochs: int = 60, lr: float = 3e-3, batch: int = 256,
                     seed: int = 0, hidden: int = 64, members: int | None = None, groups: np.ndarray | None = None,
                     within: float = 0.0, dropout: float = 0.0,
                     weight_decay: float = 1e-5) -> FeatureQANet | FeatureQAEnsemble:
    """Fit a :class:`FeatureQANet` by MSE. x: (N, 4 F) float (F = F_OBJ or F_OBJ_IMG, from the width of x),
    y: (N,) true J&F in [0, 1]. ``members``: None, one net from ``seed``; M, a :class:`FeatureQAEnsemble` of
    M nets trained alike from seeds ``seed * M + i``. ``within`` > 0 with ``groups`` (N,) ints (the rows of
    one decision share a group): the loss adds ``within`` x the MSE of the predictions centred on their
    group's mean against the targets centred alike (the within-video errors; batches hold whole groups).
    ``dropout``: :class:`FeatureQANet`'s training dropout; ``weight_decay``: Adam's (L2 on all weights)."""
    features = int(np.asarray(x).shape[1]) // 4
    if members is not None:
        ens = FeatureQAEnsemble(int(members), hidden, features, dropout)
        for i in range(int(members)):
            ens.members[i] = train_feature_qa(x, y, epochs=epochs, lr=lr, batch=batch,
                                              seed=int(seed) * int(members) + i, hidden=hidden, groups=groups,
                                              within=within, dropout=dropout, weight_decay=weight_decay)
        return ens.eval()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = FeatureQANet(hidden, features, dropout)
    net.norm.fit(x)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    if within > 0:
        if groups is None or len(groups) != len(xt):
            raise ValueError("within > 0 needs groups, one per row of x")
        _, gid = np.unique(np.asarray(groups), return_inverse=True)
        members_of = [np.flatnonzero(gid == g) for g in range(gid.max() + 1)]
        per_batch = max(1, batch // max(1, int(np.mean([len(m) for m in members_of]))))
    for _ in range(epochs):
        if within > 0:
            go = rng.permutation(len(members_of))
            batches = [np.concatenate([members_of[g] for g in go[i:i + per_batch]])
                       for i in range(0, len(go), per_batch)]
        else:
            order = rng.permutation(len(xt))
            batches = [order[i:i + batch] for i in range(0, len(order), batch)]
        for b in batches:
            idx = torch.as_tensor(b)
            loss = qa_loss(net(xt[idx]), yt[idx], torch.as_tensor(gid[b]) if within > 0 else None, within)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def listwise_targets(gains: np.ndarray, tau: float = 0.5) -> np.ndarray:
    """(C,) gains -> (C,) target distribution softmax(z / tau), z standardised within the decision
    (all equal gains: uniform)."""
    g = np.asarray(gains, dtype=np.float64)
    sd = g.std()
    z = (g - g.mean()) / sd if sd > 1e-9 else np.zeros_like(g)
    e = np.exp((z - z.max()) / tau)
    return e / e.sum()


def train_ranker(decisions: Sequence[dict], *, epochs: int = 40, lr: float = 2e-3, seed: int = 0,
                 hidden: int = 64, tau: float = 0.5, keep: Sequence[int] | None = None,
                 members: int | None = None) -> RankNet | RankEnsemble:
    """Fit a :class:`RankNet` with the ListNet loss. Each decision: ``state`` (T, F_V2), ``candidates``
    (C,) frame indices, ``gains`` (C,) one-round look-ahead gains. One decision per step (videos differ
    in length), decisions in a seeded random order each epoch. ``keep``: the state columns the net may
    use (default :data:`agent.features.V2_DEFAULT_COLUMNS`; the others are zeroed after normalisation).
    ``members``: None, one RankNet from ``seed``; M, a :class:`RankEnsemble` of M nets trained alike from
    seeds ``seed * M + i`` (disjoint for different ``seed``)."""
    if members is not None:
        ens = RankEnsemble(int(members), hidden)
        for i in range(int(members)):
            ens.members[i] = train_ranker(decisions, epochs=epochs, lr=lr, seed=int(seed) * int(members) + i,
                                          hidden=hidden, tau=tau, keep=keep)
        return ens.eval()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = RankNet(hidden)
    net.keep.zero_()
    net.keep[list(V2_DEFAULT_COLUMNS if keep is None else keep)] = 1.0
    net.norm.fit(np.concatenate([d["state"] for d in decisions], axis=0))
    data = [(torch.as_tensor(np.asarray(d["state"], np.float32))[None], torch.as_tensor(np.asarray(d["candidates"])),
             torch.as_tensor(listwise_targets(d["gains"], tau), dtype=torch.float32)) for d in decisions]
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    for _ in range(epochs):
        net.train()
        for i in rng.permutation(len(data)):
            s, c, t = data[i]
            logp = torch.log_softmax(net(s)[0, c], dim=0)
            loss = -(t * logp).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


# -- use in the loop ---------------------------------------------------------------------------
class FeatureQuality:
    """Wild quality from :class:`FeatureQANet`: ``(frames, probs) -> (T, K)`` predicted J&F.

    The features need the frames annotated so far: read from ``source.annotated`` at call time (the
    backend of the run: ``VOS.base.VOSBackend.annotated``) or given with :meth:`set_annotated`.
    The object features of the last call are kept in ``last_features`` (for the v2 agent).
    """

    def __init__(self, net: FeatureQANet | FeatureQAEnsemble, source: Any = None) -> None:
        self.net = net.eval()
        self.source = source
        self._annotated: list[int] | None = None
        self.last_features: np.ndarray | None = None
        weights = getattr(net, "source", None)
        self.weight_files = [weights] if weights else None

    def set_annotated(self, annotated: Sequence[int]) -> None:
        self._annotated = list(annotated)

    def annotated(self) -> list[int]:
        if self._annotated is not None:
            return self._annotated
        if self.source is None:
            raise RuntimeError("FeatureQuality needs the annotated frames: give the backend as source")
        return list(self.source.annotated)

    @property
    def features(self) -> int:
        """Object features the net reads: F_OBJ, or F_OBJ_IMG (it needs the frames)."""
        return int(getattr(self.net, "features", F_OBJ))

    def predict(self, obj_feats: np.ndarray) -> np.ndarray:
        """(T, K, F) object features (F >= the net's; the first ones are used) -> (T, K) predicted J&F."""
        obj_feats = np.asarray(obj_feats)
        if obj_feats.shape[-1] < self.features:
            raise ValueError(f"the feature QA model reads {self.features} object features (with the image "
                             f"evidence), got {obj_feats.shape[-1]}: compute them with the frames")
        x = qa_inputs(obj_feats[..., : self.features])
        with torch.no_grad():
            y = self.net(torch.as_tensor(x.reshape(-1, x.shape[-1])))
        return y.numpy().reshape(x.shape[:2]).astype(np.float64)

    def __call__(self, frames: np.ndarray, probs: np.ndarray) -> np.ndarray:
        ann = self.annotated()
        feats = object_features(probs, ann, len(ann), frames=frames if self.features > F_OBJ else None)
        self.last_features = feats
        return self.predict(feats)


class V2Selector:
    """``method=ours agent=v2``: the frame with the highest score of its :class:`RankNet` or
    :class:`RankEnsemble` (no exploration; may repeat a frame), among the frames of the lowest ``pool`` share
    of quality ranks (default 1: all).
    Reads ``ctx.quality``, ``ctx.counts``, ``ctx.round`` and the object features of the round:
    ``ctx.probs`` (T, K+1, H, W) if the loop provides it, else the features the wild
    :class:`FeatureQuality` computed this round (``qa``). Keeps the previous round's quality per sample
    (reset at round 1)."""

    name = "ours"
    needs_quality = True

    def __init__(self, net: RankNet | RankEnsemble, qa: FeatureQuality | None = None, tap: Any = None,
                 pool: float = 1.0) -> None:
        self.net = net.eval()
        self.pool = float(pool)   # choose among the frames whose quality rank / (T - 1) is at most this (1: all)
        self.qa = qa
        self.tap = tap      # agent.lookahead.BackendTap: the round's probabilities when ctx has none
        self._prev: np.ndarray | None = None
        weights = getattr(net, "source", None)
        self.weight_files = [weights] if weights else None

    def state(self, ctx: Any) -> np.ndarray:
        if ctx.quality is None:
            raise ValueError("the v2 agent needs per-frame quality but the context has none")
        probs = getattr(ctx, "probs", None)
        if probs is None and self.tap is not None:
            probs = self.tap.probs()
        if probs is not None:
            feats = object_features(probs, ctx.annotated, ctx.round)
        elif self.qa is not None and self.qa.last_features is not None:
            feats = self.qa.last_features
        else:
            raise RuntimeError("the v2 agent needs the round's probabilities (ctx.probs) or a FeatureQuality")
        prev = self._prev if (self._prev is not None and ctx.round > 1 and len(self._prev) == len(ctx.quality)) else None
        self._prev = np.asarray(ctx.quality, dtype=np.float64).copy()
        return agent_state_v2(ctx.quality, prev, ctx.counts, feats, ctx.round)

    def __call__(self, ctx: Any) -> int:
        s = self.state(ctx)
        with torch.no_grad():
            scores = self.net(torch.as_tensor(s)[None])[0].numpy()
        if self.pool < 1.0:   # state column 3: the frame's quality rank / (T - 1), 0 = the lowest
            scores = np.where(s[:, 3] <= self.pool, scores, -np.inf)
        return int(np.clip(int(np.argmax(scores)), 0, int(ctx.num_frames) - 1))


# -- collecting the teacher's labels -------------------------------------------------------------
class CollectSelector:
    """Behaviour policy of the data collection (oracle setting, with a :class:`agent.lookahead.BackendTap`).

    At every decision it records, without changing the episode: the round's object features, the
    true per-object J&F of the masks (for the feature QA model), counts, annotated frames, and the
    one-round look-ahead gains of ``n_random`` random frames plus the ``n_worst`` lowest-J&F frames
    not yet annotated (the teacher's labels for the ranker). It then picks the next frame with the
    mixture ``mix`` = (teacher's best candidate, random, worst by ground truth, linspace), so that the
    data hold maps from several rules and rounds. ``decisions`` collects the records (dicts).
    """

    name = "collect"
    needs_quality = False

    def __init__(self, tap: Any, n_random: int = 6, n_worst: int = 2,
                 mix: tuple[float, float, float, float] = (0.4, 0.2, 0.2, 0.2)) -> None:
        self.tap = tap
        self.n_random, self.n_worst = int(n_random), int(n_worst)
        self.mix = np.asarray(mix, dtype=np.float64) / np.sum(mix)
        self.decisions: list[dict] = []

    def __call__(self, ctx: Any) -> int:
        from agent.lookahead import object_weighted
        from agent.selection import select_linspace, select_worst
        from datasets import davis_compat as dc

        look = getattr(ctx, "look_ahead", None) or self.tap.look_ahead()
        T = int(ctx.num_frames)
        probs = self.tap.probs()
        frames = getattr(self.tap, "frames", None)
        feats = object_features(probs, ctx.annotated, ctx.round, frames=frames)
        gt, pred = look.gt[look.start:look.stop], look.pred[look.start:look.stop].astype(np.int64)
        j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=look.K)
        f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=look.K)
        jf_obj = 0.5 * (np.asarray(j) + np.asarray(f))
        now, _ = object_weighted(gt, pred, look.K)
        rng = ctx.rng
        done = set(int(a) for a in ctx.annotated)
        order = sorted(range(T), key=lambda t: (float(ctx.gt_quality[t]), t))
        worst = [t for t in order if t not in done][: self.n_worst]
        others = [t for t in range(T) if t not in worst]
        rand = list(rng.choice(others, size=min(self.n_random, len(others)), replace=False))
        cands = np.array(sorted(set(int(c) for c in worst + rand)))
        gains = look.try_frames(cands) - now
        self.decisions.append({"sequence": getattr(self.tap, "sequence", None), "round": int(ctx.round),
                               "obj_feats": feats, "jf_obj": jf_obj.astype(np.float32),
                               "gt_quality": np.asarray(ctx.gt_quality, np.float32),
                               "counts": np.asarray(ctx.counts), "annotated": list(ctx.annotated),
                               "candidates": cands, "gains": gains.astype(np.float32), "jf": now,
                               # the round's masks, compressed: object features can be recomputed offline
                               "masks_z": zlib.compress(np.ascontiguousarray(pred, dtype=np.uint8).tobytes(), 1),
                               "masks_shape": tuple(int(v) for v in pred.shape)})
        pick = rng.choice(4, p=self.mix)
        if pick == 0:
            return int(cands[int(np.argmax(gains))])
        if pick == 1:
            return int(rng.integers(0, T))
        if pick == 2:
            return select_worst(ctx.gt_quality, ctx.annotated)
        return select_linspace(T, ctx.first_frame, ctx.annotated)


def ranker_decisions(collected: Sequence[Sequence[dict]], qa: FeatureQuality | None = None) -> list[dict]:
    """Training decisions for :func:`train_ranker` from collected episodes (one list of
    :class:`CollectSelector` records per sample, in round order). The quality in the state is the
    ground truth (``qa`` None: the oracle agent) or the feature QA model's prediction averaged over
    objects (the wild agent); the previous round's quality is the same quantity one decision earlier."""
    out = []
    for episode in collected:
        prev = None
        for d in episode:
            q = d["gt_quality"].astype(np.float64) if qa is None else qa.predict(d["obj_feats"]).mean(axis=1)
            state = agent_state_v2(q, prev if d["round"] > 1 else None, d["counts"], d["obj_feats"], d["round"])
            out.append({"state": state, "candidates": d["candidates"], "gains": d["gains"]})
            prev = q
    return out


def crossfit_decisions(collected: Sequence[Sequence[dict]], *, folds: int = 3, qa_epochs: int = 60,
                       seed: int = 0, qa_members: int | None = None, qa_features: int = F_OBJ,
                       qa_within: float = 0.0, qa_dropout: float = 0.0, qa_weight_decay: float = 1e-5) -> list[dict]:
    """The wild training decisions of :func:`ranker_decisions` (same order), with the quality of each
    episode predicted by a feature QA model that did not see the episode's sequence: sequences sorted by
    name and dealt round robin into ``folds`` folds, one QA model per fold trained on the others
    (cross-fitting). In-sample predictions are closer to the truth than the loop's on unseen video, and a
    ranker trained on them learns to trust the QA more than it deserves. With a single sequence the QA
    model is trained on all of it (in-sample). ``qa_epochs``, ``seed``, ``qa_members``, ``qa_within``,
    ``qa_dropout``, ``qa_weight_decay``: as :func:`train_feature_qa`'s ``epochs``, ``seed``, ``members``,
    ``within``, ``dropout``, ``weight_decay``; ``qa_features``: as :func:`qa_training_set`'s ``features``."""

    def fit(episodes):
        return FeatureQuality(fit_feature_qa(episodes, features=qa_features, within=qa_within, epochs=qa_epochs,
                                             seed=seed, members=qa_members, dropout=qa_dropout,
                                             weight_decay=qa_weight_decay))

    seq = [str(e[0]["sequence"]) if e else "" for e in collected]
    names = sorted(set(seq))
    k = min(int(folds), len(names))
    if k < 2:
        return ranker_decisions(collected, fit(collected))
    fold = {n: i % k for i, n in enumerate(names)}
    per_episode: list[list[dict]] = [[] for _ in collected]
    for j in range(k):
        qa = fit([e for e, q in zip(collected, seq, strict=True) if fold[q] != j])
        for i, q in enumerate(seq):
            if fold[q] == j:
                per_episode[i] = ranker_decisions([collected[i]], qa)
    return [d for e in per_episode for d in e]


def decision_masks(d: dict) -> np.ndarray:
    """(T, H, W) uint8 object ids of a collected decision's round (:class:`CollectSelector` stores them)."""
    return np.frombuffer(zlib.decompress(d["masks_z"]), dtype=np.uint8).reshape(d["masks_shape"])


def qa_training_set(collected: Sequence[Sequence[dict]], features: int = F_OBJ, groups: bool = False):
    """(N, 4 F) inputs and (N,) true per-object J&F from collected episodes, with F = ``features`` object
    features (F_OBJ_IMG: with the image evidence, which episodes collected with the frames hold); with
    ``groups``, also (N,) ints numbering the decisions (for :func:`train_feature_qa`'s ``within``)."""
    xs, ys, gs = [], [], []
    for episode in collected:
        for d in episode:
            f = np.asarray(d["obj_feats"])
            if f.shape[-1] < features:
                raise ValueError(f"the collected decisions of {d.get('sequence')} hold {f.shape[-1]} object features, "
                                 f"not {features}: collect them again with the frames (delete the collect folder)")
            x = qa_inputs(f[..., :features])
            xs.append(x.reshape(-1, x.shape[-1]))
            ys.append(np.asarray(d["jf_obj"]).reshape(-1))
            gs.append(np.full(len(xs[-1]), len(gs)))
    out = (np.concatenate(xs), np.concatenate(ys))
    return out + (np.concatenate(gs),) if groups else out


def fit_feature_qa(collected: Sequence[Sequence[dict]], *, features: int = F_OBJ, within: float = 0.0,
                   epochs: int = 60, seed: int = 0, members: int | None = None, dropout: float = 0.0,
                   weight_decay: float = 1e-5) -> FeatureQANet | FeatureQAEnsemble:
    """The feature QA model (or ensemble) trained on collected episodes: :func:`qa_training_set` with
    ``features``, then :func:`train_feature_qa` with ``within``, ``epochs``, ``seed``, ``members``,
    ``dropout``, ``weight_decay``."""
    x, y, g = qa_training_set(collected, features, groups=True)
    return train_feature_qa(x, y, epochs=epochs, seed=seed, members=members, groups=g, within=within,
                            dropout=dropout, weight_decay=weight_decay)
