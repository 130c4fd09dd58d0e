"""The agent's Q-network (PROTOCOL.md §5): one Q-value per frame from the (T, 2) state.

Per frame t the state is [q_t, c_t] (quality in [0, 1], scribble count). Each frame is
encoded on its own, a single bias-free LSTM cell reads the encodings forward and, with the
same weights, backward (each from a zero state), and a small MLP turns the two hidden
states of a frame into its Q-value. Sharing the cell keeps the published checkpoint's
key layout (one ``lstm_cell``) and its 180,993 parameters.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

STATE_DIM = 2
HIDDEN = 128
NUM_PARAMETERS = 180_993


class QNet(nn.Module):
    """Input states (N, T, 2) float -> Q-values (N, T), one per frame (= action)."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.hidden = hidden
        self.encoder_fc1 = nn.Linear(STATE_DIM, hidden)
        self.encoder_fc2 = nn.Linear(hidden, hidden)
        self.lstm_cell = nn.LSTMCell(hidden, hidden, bias=False)
        self.decoder_fc1 = nn.Linear(2 * hidden, hidden)
        self.decoder_fc2 = nn.Linear(hidden, 1)

    def _scan(self, x: torch.Tensor, reverse: bool) -> torch.Tensor:
        """Run the shared cell over x (N, T, H) from a zero state; hidden states (N, T, H)
        in frame order (for ``reverse`` h[t] has read frames T-1 .. t)."""
        N, T, H = x.shape
        h = x.new_zeros(N, H)
        c = x.new_zeros(N, H)
        out: list[torch.Tensor] = [x.new_empty(0)] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            h, c = self.lstm_cell(x[:, t], (h, c))
            out[t] = h
        return torch.stack(out, dim=1)

    def _bidirectional(self, x: torch.Tensor) -> torch.Tensor:
        """concat(h_fw, h_bw) (N, T, 2H) of the shared cell, in one fused call of torch's LSTM
        kernel given the same weights for both directions (exactly :meth:`_scan` twice, ~25%
        faster on CPU); falls back to the Python loop if the kernel is unavailable."""
        lstm = getattr(torch._VF, "lstm", None)
        if lstm is None:
            return torch.cat([self._scan(x, reverse=False), self._scan(x, reverse=True)], dim=-1)
        zero = x.new_zeros(2, x.shape[0], self.hidden)
        w = [self.lstm_cell.weight_ih, self.lstm_cell.weight_hh]
        out, _, _ = lstm(x, (zero, zero), w + w, False, 1, 0.0, self.training, True, True)
        return out

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if state.dim() != 3 or state.shape[-1] != STATE_DIM:
            raise ValueError(f"state must be (N, T, {STATE_DIM}), got {tuple(state.shape)}")
        x = self.encoder_fc2(torch.relu(self.encoder_fc1(state)))
        h = self._bidirectional(x)
        return self.decoder_fc2(torch.relu(self.decoder_fc1(torch.relu(h)))).squeeze(-1)


def load_agent(path: str | Path, device: torch.device | str = "cpu") -> QNet:
    """A QNet in eval mode on ``device`` with the weights at ``path``, loaded strictly.

    Accepts a bare state dict (the published ``weights/agent.pt``, optionally with
    ``module.`` prefixes) or a dict holding one under ``state_dict`` / ``policy``
    (this project's training checkpoints)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"agent weights not found at {path}: download the published agent.pt into "
                                "weights/ or train one with `python train_agent.py`")
    from core.checkpoint import load, load_into, state_dict_of

    obj = load(path, expected=AGENT_LAYOUT, map_location=device,
               fix="train it again (`python train_agent.py`) or download the published agent.pt again")
    net = QNet()
    load_into(net, state_dict_of(obj, path, expected=AGENT_LAYOUT, wrappers=("state_dict", "policy")), path,
              expected=AGENT_LAYOUT)
    net.source = str(path)
    log.info("loaded agent weights from %s", path)
    return net.to(device).eval()


AGENT_LAYOUT = ("the agent's Q-network: a state dict with encoder_fc1.*, encoder_fc2.*, lstm_cell.weight_ih/hh, "
                "decoder_fc1.*, decoder_fc2.* (optionally 'module.'-prefixed or under 'state_dict'/'policy')")
